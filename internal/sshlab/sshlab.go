// Package sshlab starts real OpenSSH servers for tests: one sshd per lab
// host, each on its own loopback port and in its own mount namespace
// (unshare --mount), with private tmpfs over /etc/pacemaker, /home and
// /root, and a private /etc (an overlay holding the lab's passwd, group,
// shadow and sudoers; bind mounts of them where overlayfs is missing).
// Every host has the users alice and bob and a sudo user "deploy"
// (passwordless sudo); a host started with SudoOnly refuses root logins,
// so it can be reached only as deploy with sudo.
//
// pcmkeys reaches lab hosts exactly as it reaches real ones: by address
// and port, with their host keys in a known_hosts file the lab writes.
// The lab needs root, unshare and Debian's openssh-server; [Start] skips
// the test with the reason when they are missing.
//
// # Hosts with a network of their own
//
// With [Options].OwnNetwork every host also gets its own network, UTS
// (hostname = host name) and IPC namespaces, with only lo, and private
// tmpfs over /run and /dev/shm: whatever runs on it (a pacemaker-based
// listening on its remote-tls-port, an `ss -K` closing sessions) sees only
// that host's sockets. Nothing of it listens on the machine: the lab
// listens on 127.0.0.1:Port for the host and runs, for every connection it
// accepts, `sshd -i` inside the host's namespaces (nsenter) with the
// connection as its stdin and stdout. [Host.Exec], [Host.Command] (a
// process the test runs in the background) and [Host.PID] (for nsenter
// --target) reach the same namespaces. [Options].Share keeps machine
// directories (a tool built into ~/.cache) visible, read-only, inside.
package sshlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lab is a set of running lab hosts.
type Lab struct {
	Dir          string // the lab's files
	KnownHosts   string // known_hosts with every host's key
	IdentityFile string // the client key every host accepts (root and deploy)
	Hosts        []*Host

	portsMu sync.Mutex
	ports   map[int]bool // ports handed to hosts
}

// takePort reserves port for a host unless another host has it: a port
// the kernel says is free stays free only until someone binds it, and
// hosts starting side by side may be told the same one.
func (l *Lab) takePort(port int) bool {
	l.portsMu.Lock()
	defer l.portsMu.Unlock()
	if l.ports == nil {
		l.ports = map[int]bool{}
	}
	if l.ports[port] {
		return false
	}
	l.ports[port] = true
	return true
}

// Options shape a lab.
type Options struct {
	// SudoOnly lists the indexes of hosts that refuse root logins.
	SudoOnly []int
	// Slow delays every session of the hosts with these indexes by
	// SlowBy before its command runs (sshd's ForceCommand).
	Slow   []int
	SlowBy time.Duration
	// OwnNetwork gives every host its own network namespace (and UTS, IPC,
	// /run and /dev/shm), reached through a forwarder on 127.0.0.1:Port.
	OwnNetwork bool
	// Share lists machine directories (absolute paths) that stay visible
	// at their own path inside every host, also under the host's private
	// /root, /home or /etc/pacemaker: programs a test built into a cache
	// (pcmklab's Pacemaker in ~/.cache). They are the machine's, not copies.
	Share []string
	// Netns runs every host's sshd in this network namespace (a path such
	// as /proc/PID/ns/net), listening on Address, instead of the machine's
	// own network on 127.0.0.1: a benchmark's lab behind a link of its
	// own (internal/sshbench/netem). Hosts still get their own mount
	// namespace; they share this network. Not with OwnNetwork.
	Netns   string
	Address string
	// LogLevel is sshd's LogLevel (default ERROR); VERBOSE logs every
	// login and session ("Starting session: command …") in the host's
	// sshd.log, which [Host.Log] reads.
	LogLevel string
}

// Uids of the lab's users.
const (
	UIDHacluster = 189
	GIDHaclient  = 189
	UIDAlice     = 2001
	UIDBob       = 2002
	UIDDeploy    = 2003
)

// SkipReason says why a lab cannot run here, or "".
func SkipReason() string {
	if os.Geteuid() != 0 {
		return "the SSH lab needs root (mount namespaces, sshd); CI runs as root"
	}
	for _, bin := range []string{"/usr/sbin/sshd", "ssh-keygen", "unshare", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not installed (apt-get install openssh-server util-linux; .ci/run does)"
		}
	}
	return ""
}

// SkipReasonOwnNetwork says why hosts with [Options].OwnNetwork cannot run
// here, or "".
func SkipReasonOwnNetwork() string {
	if r := SkipReason(); r != "" {
		return r
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "ip is not installed (apt-get install iproute2; .ci/run does)"
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return "this kernel has no network namespaces"
	}
	return ""
}

// Start starts n hosts named host00, host01, … and stops them when the test
// ends.
func Start(t testing.TB, n int, opts Options) *Lab {
	t.Helper()
	r := SkipReason()
	if opts.OwnNetwork {
		r = SkipReasonOwnNetwork()
	}
	if r != "" {
		t.Skip(r)
	}
	l, err := New(n, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	return l
}

// New starts a lab outside a test (benchmark programs); Stop it.
func New(n int, opts Options) (*Lab, error) {
	for _, p := range opts.Share {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("sshlab: shared path %q is not absolute", p)
		}
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("sshlab: shared path %q is not a directory", p)
		}
	}
	if opts.Netns != "" && opts.OwnNetwork {
		return nil, fmt.Errorf("sshlab: Netns and OwnNetwork exclude each other")
	}
	if opts.Address == "" {
		opts.Address = "127.0.0.1"
	} else if opts.Netns == "" && opts.Address != "127.0.0.1" {
		return nil, fmt.Errorf("sshlab: Address %s needs Netns", opts.Address)
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "ERROR"
	}
	dir, err := os.MkdirTemp("", "pcmkeys-lab-")
	if err != nil {
		return nil, err
	}
	// sshd reads authorized_keys as the logging-in user: the lab's files
	// must be reachable by deploy.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	l := &Lab{Dir: dir, KnownHosts: filepath.Join(dir, "known_hosts"), IdentityFile: filepath.Join(dir, "id_ed25519")}
	if err := l.prepare(); err != nil {
		l.Stop()
		return nil, err
	}
	sudoOnly := map[int]bool{}
	for _, i := range opts.SudoOnly {
		sudoOnly[i] = true
	}
	slow := map[int]time.Duration{}
	for _, i := range opts.Slow {
		slow[i] = opts.SlowBy
	}
	l.Hosts = make([]*Host, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		l.Hosts[i] = &Host{Name: fmt.Sprintf("host%02d", i), Address: opts.Address, SudoOnly: sudoOnly[i], OwnNetwork: opts.OwnNetwork,
			share: opts.Share, slowBy: slow[i], netns: opts.Netns, logLevel: opts.LogLevel, lab: l}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = l.startHost(l.Hosts[i])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			l.Stop()
			return nil, err
		}
	}
	var kh strings.Builder
	for _, h := range l.Hosts {
		kh.WriteString(h.HostKeyLine + "\n")
	}
	if err := os.WriteFile(l.KnownHosts, []byte(kh.String()), 0o644); err != nil {
		l.Stop()
		return nil, err
	}
	return l, nil
}

// prepare writes what every host shares: the client key, authorized_keys,
// passwd, group and sudoers.
func (l *Lab) prepare() error {
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pcmkeys-lab", "-f", l.IdentityFile).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(l.IdentityFile + ".pub")
	if err != nil {
		return err
	}
	files := map[string]string{
		"authorized_keys": string(pub),
		"passwd": fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nhacluster:x:%d:%d::/var/lib/pacemaker:/usr/sbin/nologin\nalice:x:%d:%d::/home/alice:/bin/sh\nbob:x:%d:%d::/home/bob:/bin/sh\ndeploy:x:%d:%d::/home/deploy:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\nsshd:x:105:65534::/run/sshd:/usr/sbin/nologin\n",
			UIDHacluster, GIDHaclient, UIDAlice, UIDAlice, UIDBob, UIDBob, UIDDeploy, UIDDeploy),
		"group": fmt.Sprintf("root:x:0:\nhaclient:x:%d:\nalice:x:%d:\nbob:x:%d:\ndeploy:x:%d:\nnogroup:x:65534:\n",
			GIDHaclient, UIDAlice, UIDBob, UIDDeploy),
		"sudoers": "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\ndeploy ALL=(ALL:ALL) NOPASSWD: ALL\n",
		// No passwords ("*"), nothing locked or expired: PAM's account check
		// (sudo's) passes, and only keys log in.
		"shadow": "root:*:20000:0:99999:7:::\nhacluster:*:20000:0:99999:7:::\nalice:*:20000:0:99999:7:::\nbob:*:20000:0:99999:7:::\ndeploy:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\nsshd:*:20000:0:99999:7:::\n",
	}
	for name, content := range files {
		mode := os.FileMode(0o644)
		switch name {
		case "sudoers":
			mode = 0o440
		case "shadow":
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(l.Dir, name), []byte(content), mode); err != nil {
			return err
		}
	}
	return os.MkdirAll("/run/sshd", 0o755)
}

// Stop stops every host and removes the lab's files.
func (l *Lab) Stop() {
	for _, h := range l.Hosts {
		if h != nil {
			h.Stop()
		}
	}
	os.RemoveAll(l.Dir)
}
