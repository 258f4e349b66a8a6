#!/bin/sh
# Runs pcmkeys's main job on the embedded default: init, then onboard alice,
# all under testdata/quickstart/state. Safe to run again.
set -eu
cd "$(dirname "$0")/.."
state=testdata/quickstart/state
host=$state/localhost

# The demo host's own user database: hacluster, haclient and alice. As root
# they get their usual ids; as anyone else they map to you, so the files can
# be given to them without privileges.
if [ "$(id -u)" = 0 ]; then hc=990 hg=990 al=1001; else hc=$(id -u) hg=$(id -g) al=$(id -u); fi
ag=$al; [ "$(id -u)" = 0 ] || ag=$(id -g)
umask 022
mkdir -p "$host/etc" "$host/home/alice"
printf 'root:x:0:0:root:/root:/bin/sh\nhacluster:x:%s:%s::/var/lib/pacemaker:/usr/sbin/nologin\nalice:x:%s:%s::/home/alice:/bin/sh\n' \
	"$hc" "$hg" "$al" "$ag" >"$host/etc/passwd"
printf 'root:x:0:\nhaclient:x:%s:\nalice:x:%s:\n' "$hg" "$ag" >"$host/etc/group"
chmod 700 "$host/home/alice"
[ "$(id -u)" != 0 ] || chown "$al:$ag" "$host/home/alice"

go build -o "$state/pcmkeys" ./cmd/pcmkeys
pcmkeys() { "$state/pcmkeys" --config testdata/quickstart/pcmkeys.yaml "$@"; }

echo "== pcmkeys init"
pcmkeys init
echo "== pcmkeys onboard alice --client localhost"
pcmkeys onboard alice --client localhost
echo "== the files, as the demo host sees them"
ls -ln "$host/etc/pacemaker" "$host/home/alice/.pcmkeys"
