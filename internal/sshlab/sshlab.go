// Package sshlab starts real OpenSSH servers for tests: one sshd per lab
// host, each on its own loopback port and in its own mount namespace
// (unshare --mount), with private tmpfs over /etc/pacemaker, /home and
// /root, and private /etc/passwd, /etc/group and /etc/sudoers bound over
// the machine's (and /etc/shadow). Every host has the users alice and bob and a sudo user
// "deploy" (passwordless sudo); a host started with SudoOnly refuses root
// logins, so it can be reached only as deploy with sudo.
//
// pcmkeys reaches lab hosts exactly as it reaches real ones: by address
// and port, with their host keys in a known_hosts file the lab writes.
// The lab needs root, unshare and Debian's openssh-server; [Start] skips
// the test with the reason when they are missing.
package sshlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Lab is a set of running lab hosts.
type Lab struct {
	Dir          string // the lab's files
	KnownHosts   string // known_hosts with every host's key
	IdentityFile string // the client key every host accepts (root and deploy)
	Hosts        []*Host
}

// Host is one lab host.
type Host struct {
	Name     string
	Port     int
	SudoOnly bool
	slowBy   time.Duration
	lab      *Lab
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited
	// HostKeyLine is its known_hosts line.
	HostKeyLine string
}

// Options shape a lab.
type Options struct {
	// SudoOnly lists the indexes of hosts that refuse root logins.
	SudoOnly []int
	// Slow delays every session of the hosts with these indexes by
	// SlowBy before its command runs (sshd's ForceCommand).
	Slow   []int
	SlowBy time.Duration
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
	for _, bin := range []string{"/usr/sbin/sshd", "ssh-keygen", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not installed (apt-get install openssh-server util-linux; .ci/run does)"
		}
	}
	return ""
}

// Start starts n hosts named host00, host01, … and stops them when the test
// ends.
func Start(t testing.TB, n int, opts Options) *Lab {
	t.Helper()
	if r := SkipReason(); r != "" {
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
		l.Hosts[i] = &Host{Name: fmt.Sprintf("host%02d", i), SudoOnly: sudoOnly[i], slowBy: slow[i], lab: l}
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

// hostScript sets up a host's namespace and becomes its sshd.
const hostScript = `set -e
lab=$1 dir=$2
mkdir -p /etc/pacemaker
mount -t tmpfs -o mode=0750,size=4m tmpfs /etc/pacemaker
mount -t tmpfs -o mode=0755,size=4m tmpfs /home
mount -t tmpfs -o mode=0700,size=4m tmpfs /root
mount --bind "$lab/passwd" /etc/passwd
mount --bind "$lab/group" /etc/group
mount --bind "$lab/sudoers" /etc/sudoers
mount --bind "$lab/shadow" /etc/shadow
chown root:haclient /etc/pacemaker
for u in alice bob deploy; do mkdir -m 700 /home/$u; chown $u:$u /home/$u; done
exec /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>>"$dir/sshd.log"
`

func (l *Lab) startHost(h *Host) error {
	h.dir = filepath.Join(l.Dir, h.Name)
	if err := os.Mkdir(h.dir, 0o755); err != nil {
		return err
	}
	key := filepath.Join(h.dir, "ssh_host_ed25519_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.Name, "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen for %s: %v: %s", h.Name, err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	fields := strings.Fields(string(pub))
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		h.Port = port
		h.HostKeyLine = fmt.Sprintf("[127.0.0.1]:%d %s %s", port, fields[0], fields[1])
		if err := l.launch(h, key); err == nil {
			return nil
		} else if attempt >= 3 {
			return err
		}
	}
}

func (l *Lab) launch(h *Host, key string) error {
	root := "PermitRootLogin prohibit-password"
	if h.SudoOnly {
		root = "PermitRootLogin no\nAllowUsers deploy"
	}
	if h.slowBy > 0 {
		root += fmt.Sprintf("\nForceCommand sleep %.3f; eval \"$SSH_ORIGINAL_COMMAND\"", h.slowBy.Seconds())
	}
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile %s
%s
PrintMotd no
LogLevel ERROR
MaxSessions 64
MaxStartups 200
`, h.Port, key, filepath.Join(l.Dir, "authorized_keys"), root)
	if err := os.WriteFile(filepath.Join(h.dir, "sshd_config"), []byte(cfg), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", hostScript, "lab", l.Dir, h.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	h.cmd = cmd
	exited := make(chan struct{})
	h.exited = exited
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(h.dir, "sshd.log"))
			h.cmd = nil
			return fmt.Errorf("sshd of %s exited: %s", h.Name, strings.TrimSpace(string(log)))
		default:
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port)), 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.Stop()
	return fmt.Errorf("sshd of %s did not listen within 15s", h.Name)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// SetSlow makes the host delay every session by d from its next
// (re)start on.
func (h *Host) SetSlow(d time.Duration) { h.slowBy = d }

// Restart starts a stopped host again on the same port with the same host
// key — with fresh private directories, like a reinstalled node.
func (h *Host) Restart() error {
	h.Stop()
	if err := os.Remove(filepath.Join(h.dir, "sshd.log")); err != nil && !os.IsNotExist(err) {
		return err
	}
	return h.lab.launch(h, filepath.Join(h.dir, "ssh_host_ed25519_key"))
}

// Stop kills the host: its sshd and every process in its mount namespace
// (the sessions sshd started run in sessions of their own, so killing the
// process group would leave them), as a crash or a power cut would.
func (h *Host) Stop() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	pid := h.cmd.Process.Pid
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	if err == nil {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			p, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if other, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p)); err == nil && other == ns {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	}
	// Wait for the listener to be gone, so a restart can take its port.
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
	}
	h.cmd = nil
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

// Exec runs a shell command inside a host's mount namespace (to look at or
// tamper with its files), as root, and returns its combined output.
func (h *Host) Exec(ctx context.Context, script string, args ...string) (string, error) {
	if h.cmd == nil {
		return "", fmt.Errorf("%s is not running", h.Name)
	}
	all := append([]string{"--target", strconv.Itoa(h.cmd.Process.Pid), "--mount", "--", "sh", "-c", script, "sh"}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", all...).CombinedOutput()
	return string(out), err
}
