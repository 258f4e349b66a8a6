#!/usr/bin/env bash
# Issue 14's benchmark: pcmkeys rotate and revoke against OpenSSH (one-shot
# and ControlMaster) and Ansible (pipelining) on lab sshd hosts, locally and
# behind 25 ms each way, at 100 and 1,000 hosts, medians of 3 (see
# internal/sshbench and docs/benchmarks.md). Needs root and Debian's
# openssh-server, openssh-client, iproute2, iptables, tcpdump, strace and
# ansible-core; takes about an hour on 2 cores and up to 6 GB of memory.
# Arguments go to the benchmark (say -hosts 100 -runs 3 for the short one).
# The table goes to stdout and to bench-DATE.txt, progress to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (network namespaces, sshd)" >&2; exit 2; }
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l >= 1.5) }'; then
	echo "bench.sh: the load average is $load: the numbers will show that machine, not pcmkeys (wait for < 1.5)" >&2
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/sshbench" ./internal/sshbench
out=bench-$(date +%Y%m%d-%H%M).txt
"$bin/sshbench" -scale -hosts 100,1000 -runs 3 "$@" | tee "$out"
echo "the table is in $out" >&2
