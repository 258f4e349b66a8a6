// Command sshbench measures pcmkeys's SSH fan-out against OpenSSH and
// Ansible on a lab of real sshd hosts (internal/sshlab). Run it as root
// from the repository's root on a machine with openssh-server (and, for
// -scale, iproute2, iptables, tcpdump and ansible-core):
//
//	go run ./internal/sshbench -scale -hosts 100,1000 -runs 3   # issue 14's table
//	go run ./internal/sshbench -limits 1000                     # what a lab of 1,000 hosts costs
//	go run ./internal/sshbench -runs 3                          # the transport table
//	go run ./internal/sshbench -lifecycle -runs 3               # rotate and revoke on 100 loopback nodes
//
// -scale starts one lab of the largest host count in a network namespace
// of its own, reached from a client namespace through a veth pair
// (internal/sshbench/netem), and for each host count, first without and
// then with -delay each way on that link, runs every job -runs times,
// round-robin, and prints the medians beside the floor measured in the
// same run:
//
//   - floor: ssh HOST true, N-wide (xargs -P N);
//   - ssh one-shot: ssh HOST 'cat > tmp && mv tmp file' < payload, N-wide;
//   - ssh ControlMaster: the same through masters opened (untimed) first;
//   - ansible: a copy task (owner, group, mode), pipelining on, forks
//     min(N, -ansible-forks), ControlPersist as Ansible sets it by default;
//   - pcmkeys rotate --cib and revoke, the binary built from this tree,
//     with the default --parallel and with --parallel N.
//
// Every OpenSSH client uses curve25519-sha256, the key exchange the Go
// client negotiates with this sshd (docs/benchmarks.md). Round trips per
// host come from a packet capture on the client's veth (tcpdump) of each
// job on -rtt-hosts hosts at the delay, and the store's requests from the
// file store's file operations (strace) at each host count.
//
// Peak memory is the largest total RSS of the job's process tree, sampled
// every 20 ms from /proc (less often for big trees); fds is the peak count
// of open files of the job's own process (pcmkeys's).
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := worker(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		return
	}
	runs := flag.Int("runs", 1, "runs per cell; the median is printed")
	lifecycle := flag.Bool("lifecycle", false, "time pcmkeys rotate and revoke on 100 loopback nodes")
	noSample := flag.Bool("no-rss", false, "do not sample memory (to see what sampling costs)")
	scale := flag.Bool("scale", false, "issue 14's table: OpenSSH, Ansible and pcmkeys, local and with latency")
	hosts := flag.String("hosts", "100,1000", "with -scale: host counts")
	delay := flag.Duration("delay", 25*time.Millisecond, "with -scale: the delay each way (0: local only)")
	jobs := flag.String("jobs", "", "with -scale: only these jobs (comma-separated names; see -list)")
	list := flag.Bool("list", false, "list -scale's jobs")
	ansibleForks := flag.Int("ansible-forks", 100, "with -scale: Ansible's forks at most")
	rttHosts := flag.Int("rtt-hosts", 3, "with -scale: hosts in the packet capture that counts round trips (0: none)")
	storeCount := flag.Bool("store-count", true, "with -scale: count the file store's operations (strace)")
	limits := flag.Int("limits", 0, "start this many lab hosts and print what they cost")
	ownNet := flag.Bool("own-network", false, "with -limits: hosts with a network namespace each (OwnNetwork)")
	nofile := flag.Int("pcmkeys-nofile", 0, "with -scale: run the timed pcmkeys jobs with this RLIMIT_NOFILE, soft and hard (prlimit)")
	keep := flag.Bool("keep", false, "with -scale: keep the work directory (configs, captures) and say where")
	flag.Parse()
	if *list {
		for _, j := range scaleJobs() {
			fmt.Printf("%-16s %s\n", j.name, j.title)
		}
		return
	}
	if r := sshlab.SkipReason(); r != "" {
		fmt.Fprintln(os.Stderr, "sshbench:", r)
		os.Exit(2)
	}
	sampleRSS = !*noSample
	pcmkeysNofile = *nofile
	raiseNofile()
	var err error
	switch {
	case *limits > 0:
		err = benchLimits(*limits, *ownNet)
	case *scale:
		var ns []int
		for _, f := range strings.Split(*hosts, ",") {
			n, cerr := strconv.Atoi(strings.TrimSpace(f))
			if cerr != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "sshbench: -hosts: %q is not a host count\n", f)
				os.Exit(2)
			}
			ns = append(ns, n)
		}
		err = benchScale(scaleOptions{hosts: ns, runs: *runs, delay: *delay, jobs: *jobs, ansibleForks: *ansibleForks,
			rttHosts: *rttHosts, storeCount: *storeCount, keep: *keep})
	case *lifecycle:
		err = benchLifecycle(*runs)
	default:
		err = bench(*runs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sshbench:", err)
		os.Exit(1)
	}
}

// raiseNofile raises this process's soft RLIMIT_NOFILE to its hard limit,
// explicitly, so that the jobs it starts inherit it too (Go raises its own
// soft limit at start-up, but gives children the original back), and says
// what it is.
func raiseNofile() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "sshbench: RLIMIT_NOFILE:", err)
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "sshbench: raise RLIMIT_NOFILE:", err)
		return
	}
	fmt.Printf("RLIMIT_NOFILE: soft = hard = %d (this process and the jobs it starts)\n", lim.Max)
}
