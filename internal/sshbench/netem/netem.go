// Package netem gives a benchmark a network of its own with real latency:
// two network namespaces it creates — the client's and the lab's — joined
// by a veth pair, and a fixed delay each way on that link. Nothing of it
// touches the machine's own network or interfaces: the machine's
// namespace gets no interface, address, route or rule, and every rule
// lives in the lab's namespace, which goes away with the link.
//
// The delay is netem's job, but this project's kernel is built without
// sch_netem (CONFIG_NET_SCH_NETEM is not set, and it loads no modules), so
// the link delays in user space instead, as close to netem as that gets:
// iptables (legacy, CONFIG_NETFILTER_XT_TARGET_NFQUEUE) hands every packet
// that enters or leaves the lab's veth to an NFQUEUE, and this process
// gives each its verdict (accept, unchanged) Delay after it arrived. The
// kernel holds the packets meanwhile; TCP, the veth and both stacks are
// untouched. A packet capture on the client's veth therefore shows what a
// capture on a client 2×Delay of round trip away from its servers shows.
//
// The lab's hosts (internal/sshlab with Options.Netns = Link.LabNetns)
// listen on LabAddr; clients run in ClientNetns (Link.Command) and reach
// them at LabAddr. Needs root, ip (iproute2) and iptables-legacy.
package netem

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// The link's addresses: 198.18.0.0/15 is the range set aside for
// benchmarking network devices (RFC 2544), and exists only inside the two
// namespaces.
const (
	ClientAddr = "198.18.0.1"
	LabAddr    = "198.18.0.2"
	ClientIf   = "pcmkc0" // the client's end of the veth pair (for a capture)
	labIf      = "pcmkl0"
	queueNum   = 7
)

// Link is the two namespaces and the veth pair between them.
type Link struct {
	ClientNetns string // /proc/PID/ns/net of the client's namespace
	LabNetns    string // and of the lab's

	holders []*exec.Cmd
	delay   time.Duration
	q       *queue
}

// SkipReason says why a Link cannot be made here, or "".
func SkipReason() string {
	if os.Geteuid() != 0 {
		return "netem needs root (network namespaces, iptables)"
	}
	for _, bin := range []string{"ip", "iptables-legacy", "unshare", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not installed (apt-get install iproute2 iptables util-linux)"
		}
	}
	return ""
}

// New makes the two namespaces and the veth pair, with no delay yet.
func New() (*Link, error) {
	if r := SkipReason(); r != "" {
		return nil, errors.New(r)
	}
	l := &Link{}
	for _, ns := range []*string{&l.ClientNetns, &l.LabNetns} {
		// A namespace lives as long as a process in it: this one, killed
		// with the benchmark if it dies first.
		cmd := exec.Command("unshare", "--net", "sleep", "infinity")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			l.Close()
			return nil, err
		}
		l.holders = append(l.holders, cmd)
		*ns = fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
		if err := waitNetns(*ns); err != nil {
			l.Close()
			return nil, err
		}
	}
	labPid := l.holders[1].Process.Pid
	steps := []struct {
		ns   string
		argv []string
	}{
		{l.ClientNetns, []string{"ip", "link", "add", ClientIf, "type", "veth", "peer", "name", labIf, "netns", fmt.Sprint(labPid)}},
		{l.ClientNetns, []string{"ip", "addr", "add", ClientAddr + "/30", "dev", ClientIf}},
		{l.ClientNetns, []string{"ip", "link", "set", "lo", "up"}},
		{l.ClientNetns, []string{"ip", "link", "set", ClientIf, "up"}},
		{l.LabNetns, []string{"ip", "addr", "add", LabAddr + "/30", "dev", labIf}},
		{l.LabNetns, []string{"ip", "link", "set", "lo", "up"}},
		{l.LabNetns, []string{"ip", "link", "set", labIf, "up"}},
	}
	for _, s := range steps {
		if err := l.run(s.ns, s.argv...); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// waitNetns waits until path names a network namespace other than ours
// (the holder has unshared).
func waitNetns(path string) error {
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 500; i++ {
		if ns, err := os.Readlink(path); err == nil && ns != self {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("netem: %s did not get a network namespace of its own", path)
}

// run runs argv inside the namespace ns.
func (l *Link) run(ns string, argv ...string) error {
	out, err := exec.Command("nsenter", append([]string{"--net=" + ns, "--"}, argv...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netem: %s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Command prepares name to run in the client's namespace (nsenter execs
// it: its pid is the command's own).
func (l *Link) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + l.ClientNetns, "--", name}, args...)...)
}

// Argv is Command's argv, for whoever builds the exec.Cmd itself.
func (l *Link) Argv(argv ...string) []string {
	return append([]string{"nsenter", "--net=" + l.ClientNetns, "--"}, argv...)
}

// Delay is the delay each way now in force.
func (l *Link) Delay() time.Duration { return l.delay }

// SetDelay puts d on each direction of the link (0: none).
func (l *Link) SetDelay(d time.Duration) error {
	if d == l.delay {
		return nil
	}
	if l.delay > 0 {
		// Rules first, so nothing new is queued; then release the rest.
		for _, r := range rules() {
			if err := l.run(l.LabNetns, append([]string{"iptables-legacy", "-t", "mangle", "-D"}, r...)...); err != nil {
				return err
			}
		}
		l.q.close()
		l.q = nil
		l.delay = 0
	}
	if d <= 0 {
		return nil
	}
	q, err := openQueue(l.LabNetns, queueNum, d)
	if err != nil {
		return err
	}
	l.q = q
	for _, r := range rules() {
		if err := l.run(l.LabNetns, append([]string{"iptables-legacy", "-t", "mangle", "-A"}, r...)...); err != nil {
			l.q.close()
			l.q = nil
			return err
		}
	}
	l.delay = d
	return nil
}

// rules are the two iptables rules (after -A or -D) that queue what
// enters and what leaves the lab's end of the link.
func rules() [][]string {
	q := []string{"-j", "NFQUEUE", "--queue-num", fmt.Sprint(queueNum)}
	return [][]string{
		append([]string{"PREROUTING", "-i", labIf}, q...),
		append([]string{"POSTROUTING", "-o", labIf}, q...),
	}
}

// Stats says how many packets the delay has held and released so far,
// and how many queue notifications the kernel dropped (their packets go
// with the next batch, early).
func (l *Link) Stats() (held, lost int64) {
	if l.q == nil {
		return 0, 0
	}
	return l.q.held.Load(), l.q.lost.Load()
}

// ConnectRTT connects n times from the client's namespace to addr (on the
// lab's side) and returns the median time a TCP connect took: one round
// trip (SYN, SYN-ACK).
func (l *Link) ConnectRTT(addr string, n int) (time.Duration, error) {
	var ds []time.Duration
	err := sshlab.InNetns(l.ClientNetns, func() error {
		for i := 0; i < n; i++ {
			t0 := time.Now()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return err
			}
			ds = append(ds, time.Since(t0))
			c.Close()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("netem: connect to %s: %w", addr, err)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], nil
}

// Close removes the delay and both namespaces (with the veth pair in
// them). The lab's hosts must be stopped first: a process left in a
// namespace keeps it.
func (l *Link) Close() {
	if l.q != nil {
		l.q.close()
		l.q = nil
	}
	for _, h := range l.holders {
		h.Process.Kill()
		h.Wait()
	}
	l.holders = nil
}
