package sshlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshfwd"
)

// Host is one lab host. Its methods are safe for concurrent use (a test may
// Stop a host from a goroutine of its own while another Restarts it).
type Host struct {
	Name string
	// Address and Port are where its sshd listens: 127.0.0.1 unless the
	// lab runs in a network namespace of its own ([Options].Netns).
	Address    string
	Port       int
	SudoOnly   bool
	OwnNetwork bool
	// HostKeyLine is its known_hosts line.
	HostKeyLine string

	lab      *Lab
	dir      string
	share    []string // machine directories visible inside
	netns    string   // the network namespace sshd runs in ("": the machine's)
	logLevel string

	mu     sync.Mutex // guards the fields below
	slowBy time.Duration
	cmd    *exec.Cmd         // sshd, or with OwnNetwork the namespace holder
	exited chan struct{}     // closed when cmd has exited
	fwd    *sshfwd.Forwarder // with OwnNetwork: the 127.0.0.1 listener
}

// hostScript sets up a host's namespaces and becomes its sshd, or with
// OwnNetwork ($4 = 1) the process that holds the namespaces.
//
// /etc is an overlay (upper layer on a tmpfs of the host's own) with the
// lab's passwd, group, shadow and sudoers written into it: no mount sits on
// the machine's /etc/passwd, which a useradd on the machine (rename over it)
// would detach, and a host may change its own /etc (chpasswd) freely.
const hostScript = `set -e
lab=$1 dir=$2 ownnet=$3 name=$4
shift 4
# Shared machine directories ($@) stay visible under the private mounts:
# held aside before them, moved back after.
i=0
for p in "$@"; do
	i=$((i + 1))
	mkdir -p "$dir/share/$i"
	mount --bind "$p" "$dir/share/$i"
done
ov=$dir/etc-overlay
mkdir -p "$ov"
mount -t tmpfs -o mode=0700,size=16m tmpfs "$ov"
mkdir "$ov/upper" "$ov/work"
if mount -t overlay overlay -o "lowerdir=/etc,upperdir=$ov/upper,workdir=$ov/work" /etc 2>/dev/null; then
	for f in passwd group sudoers shadow; do cat "$lab/$f" > "/etc/$f"; done
else
	for f in passwd group sudoers shadow; do mount --bind "$lab/$f" "/etc/$f"; done
fi
mkdir -p /etc/pacemaker
mount -t tmpfs -o mode=0750,size=4m tmpfs /etc/pacemaker
mount -t tmpfs -o mode=0755,size=4m tmpfs /home
mount -t tmpfs -o mode=0700,size=4m tmpfs /root
chown root:haclient /etc/pacemaker
for u in alice bob deploy; do mkdir -m 700 /home/$u; chown $u:$u /home/$u; done
i=0
for p in "$@"; do
	i=$((i + 1))
	mkdir -p "$p"
	mount --move "$dir/share/$i" "$p"
	mount -o remount,bind,ro "$p"
	# Under the host's own /root (0700) or /home, every user may pass.
	d=$p
	while d=$(dirname "$d") && [ "$d" != / ]; do
		case $d in /root | /root/* | /home/*) chmod o+x "$d" ;; esac
	done
done
if [ "$ownnet" != 1 ]; then
	exec /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>>"$dir/sshd.log"
fi
ip link set lo up
hostname "$name"
mount -t tmpfs -o mode=0755,size=32m tmpfs /run
mkdir -m 0755 /run/sshd /run/lock
mount -t tmpfs -o mode=1777,size=64m tmpfs /dev/shm
touch "$dir/ready"
exec sleep infinity
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
	h.mu.Lock()
	defer h.mu.Unlock()
	for attempt := 0; ; attempt++ {
		port, err := freePortIn(h.netns, h.Address)
		if err != nil {
			return err
		}
		if !h.lab.takePort(port) {
			continue
		}
		h.Port = port
		h.HostKeyLine = fmt.Sprintf("[%s]:%d %s %s", h.Address, port, fields[0], fields[1])
		if err := h.launch(); err == nil {
			return nil
		} else if attempt >= 3 {
			return err
		}
	}
}

// launch starts the host; h.mu is held.
func (h *Host) launch() error {
	root := "PermitRootLogin prohibit-password"
	if h.SudoOnly {
		root = "PermitRootLogin no\nAllowUsers deploy"
	}
	if h.slowBy > 0 {
		root += fmt.Sprintf("\nForceCommand sleep %.3f; eval \"$SSH_ORIGINAL_COMMAND\"", h.slowBy.Seconds())
	}
	cfg := fmt.Sprintf(`Port %d
ListenAddress %s
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
Subsystem sftp internal-sftp
LogLevel %s
MaxSessions 64
MaxStartups 200
`, h.Port, h.Address, filepath.Join(h.dir, "ssh_host_ed25519_key"), filepath.Join(h.lab.Dir, "authorized_keys"), root, h.logLevel)
	if err := os.WriteFile(filepath.Join(h.dir, "sshd_config"), []byte(cfg), 0o644); err != nil {
		return err
	}
	ready := filepath.Join(h.dir, "ready")
	if err := os.Remove(ready); err != nil && !os.IsNotExist(err) {
		return err
	}
	var args []string
	if h.netns != "" {
		args = append(args, "--net="+h.netns, "--", "unshare")
	}
	args = append(args, "--mount", "--propagation", "private")
	ownNet := "0"
	if h.OwnNetwork {
		args = append(args, "--net", "--uts", "--ipc")
		ownNet = "1"
	}
	args = append(args, "--", "sh", "-c", hostScript, "lab", h.lab.Dir, h.dir, ownNet, h.Name)
	args = append(args, h.share...)
	bin := "unshare"
	if h.netns != "" {
		bin = "nsenter" // which execs unshare: the pid stays sshd's
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, err := os.OpenFile(filepath.Join(h.dir, "sshd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stderr = log
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
		if h.OwnNetwork {
			if _, err := os.Stat(ready); err == nil {
				err := h.forward()
				if err != nil {
					h.stop()
				}
				return err
			}
		} else if err := dialIn(h.netns, h.Address, h.Port, 200*time.Millisecond); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.stop()
	return fmt.Errorf("sshd of %s did not listen within 15s", h.Name)
}

// SetSlow makes the host delay every session by d from its next
// (re)start on.
func (h *Host) SetSlow(d time.Duration) {
	h.mu.Lock()
	h.slowBy = d
	h.mu.Unlock()
}

// PID is the pid of the process that holds the host's namespaces (for
// nsenter --target), or 0 when the host is stopped. Without OwnNetwork it
// is the host's sshd.
func (h *Host) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil || h.cmd.Process == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// Restart starts a stopped host again on the same port with the same host
// key — with fresh private directories, like a reinstalled node.
func (h *Host) Restart() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stop()
	if err := os.Remove(filepath.Join(h.dir, "sshd.log")); err != nil && !os.IsNotExist(err) {
		return err
	}
	return h.launch()
}

// Stop kills the host: its sshd and every process in its namespaces
// (the sessions sshd started run in sessions of their own, so killing the
// process group would leave them), as a crash or a power cut would. With
// OwnNetwork its port refuses connections until it is restarted.
func (h *Host) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stop()
}

// stop is Stop with h.mu held.
func (h *Host) stop() {
	if h.fwd != nil {
		h.fwd.Close()
		h.fwd = nil
	}
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	pid := h.cmd.Process.Pid
	// The host's own namespaces only: without OwnNetwork the network
	// namespace is the machine's.
	kinds := []string{"mnt"}
	if h.OwnNetwork {
		kinds = append(kinds, "net")
	}
	var nss []string
	select {
	case <-h.exited: // reaped: its pid may be someone else's by now
	default:
		for _, kind := range kinds {
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
			self, _ := os.Readlink("/proc/self/ns/" + kind)
			if err == nil && ns != self {
				nss = append(nss, kind+" "+ns)
			}
		}
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	if len(nss) > 0 {
		killNamespaces(nss)
	}
	// Wait for the listener to be gone, so a restart can take its port.
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
	}
	h.cmd = nil
}

// killNamespaces kills every process in one of these namespaces ("mnt
// mnt:[…]", "net net:[…]").
func killNamespaces(nss []string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		for _, ns := range nss {
			kind, want, _ := strings.Cut(ns, " ")
			if got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p, kind)); err == nil && got == want {
				syscall.Kill(p, syscall.SIGKILL)
				break
			}
		}
	}
}

// nsenterArgs are nsenter's arguments to enter the host's namespaces.
func (h *Host) nsenterArgs(pid int) []string {
	args := []string{"--target", strconv.Itoa(pid), "--mount"}
	if h.OwnNetwork {
		args = append(args, "--net", "--uts", "--ipc")
	}
	return args
}

// Exec runs a shell command inside a host's namespaces (to look at or
// tamper with its files, or with OwnNetwork its sockets), as root, and
// returns its combined output.
func (h *Host) Exec(ctx context.Context, script string, args ...string) (string, error) {
	pid := h.PID()
	if pid == 0 {
		return "", fmt.Errorf("%s is not running", h.Name)
	}
	all := append(h.nsenterArgs(pid), append([]string{"--", "sh", "-c", script, "sh"}, args...)...)
	out, err := exec.CommandContext(ctx, "nsenter", all...).CombinedOutput()
	return string(out), err
}

// Command prepares a command to run inside the host's namespaces (nsenter
// execs it: its pid is the command's own), as root, for processes a test
// runs and stops itself (a daemon in the background). It fails when the
// host is stopped.
func (h *Host) Command(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	pid := h.PID()
	if pid == 0 {
		return nil, fmt.Errorf("%s is not running", h.Name)
	}
	all := append(h.nsenterArgs(pid), append([]string{"--", name}, args...)...)
	return exec.CommandContext(ctx, "nsenter", all...), nil
}

// Log returns what the host's sshd has logged (its stderr, at the lab's
// [Options].LogLevel) since it was last (re)started.
func (h *Host) Log() (string, error) {
	b, err := os.ReadFile(filepath.Join(h.dir, "sshd.log"))
	return string(b), err
}
