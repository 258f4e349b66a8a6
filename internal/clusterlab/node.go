package clusterlab

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

// Node is one machine of the lab: a full cluster node (corosync and
// pacemakerd) or the remote node (pacemaker-remoted only). Its network
// namespace and its disk persist; everything else is new at every boot.
type Node struct {
	Name   string
	Addr   string // its address on the lab's switch (10.250.0.0/24)
	Remote bool   // a Pacemaker Remote node
	// Port is its SSH port on 127.0.0.1; HostKeyLine its known_hosts line.
	Port        int
	HostKeyLine string

	lab   *Cluster
	netns string // its persistent network namespace (ip netns)
	dir   string // its files on the machine: disk/, host key, ready
	fwd   *sshfwd.Forwarder

	mu     sync.Mutex // guards the fields below
	holder int        // pid of its init (pid 1 of its pid namespace), 0 when off
	cmd    *exec.Cmd  // unshare, the holder's parent
	exited chan struct{}
	boots  int
}

// bootScript becomes a node's init: it runs in the node's network
// namespace as pid 1 of fresh pid, mount, UTS and IPC namespaces, mounts the
// node's world and then reaps orphans for as long as the node is on (bash
// reaps every child, adopted or not, when `wait` returns; this machine's own
// pid 1 does not reap, so daemons must not be orphaned to it).
//
// $1 name, $2 node dir (disk/ inside), $3 /usr layers (overlay lowerdir
// without /usr), $4 Pacemaker peer prefix or "", $5 layer over the peer's
// sbin or "".
const bootScript = `set -e
name=$1 dir=$2 layers=$3 peer=$4 peersbin=$5
disk=$dir/disk
hostname "$name"
mount -t sysfs sysfs /sys
if [ -n "$peer" ]; then
	mkdir -p "$dir/hold"
	mount --bind "$peer" "$dir/hold"
fi
mount -t overlay overlay -o "lowerdir=$layers:/usr" /usr
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$disk/etc/upper,workdir=$disk/etc/work" /etc
for d in etc/corosync etc/pacemaker var/lib/pacemaker var/lib/corosync var/log/pacemaker var/log/corosync root home; do
	mkdir -p "/$d"
	mount --bind "$disk/${d//\//-}" "/$d"
done
if [ -n "$peer" ]; then
	mkdir -p "$peer"
	mount --move "$dir/hold" "$peer"
	[ -z "$peersbin" ] || mount -t overlay overlay -o "lowerdir=$peersbin:$peer/sbin" "$peer/sbin"
fi
mount -t tmpfs -o mode=0755,size=64m tmpfs /run
mkdir -m 0755 /run/sshd /run/lock
mount -t tmpfs -o mode=1777,size=256m tmpfs /dev/shm
ip link set lo up
touch "$dir/ready"
set +e
while :; do
	sleep 5 &
	wait $!
done
`

// boot starts the node's init and waits until its world is mounted; it
// starts no cluster daemon. n.mu is held.
func (n *Node) boot() error {
	if n.holder != 0 {
		return nil
	}
	ready := filepath.Join(n.dir, "ready")
	os.Remove(ready)
	l := n.lab
	layers := l.usrLayers(n)
	peersbin := ""
	if l.peer != "" && !n.Remote {
		peersbin = filepath.Join(l.Dir, "layers", "peer-sbin")
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+n.netns, "--",
		"unshare", "--pid", "--fork", "--kill-child", "--mount", "--uts", "--ipc", "--propagation", "private", "--mount-proc",
		"--", "bash", "-c", bootScript, "boot", n.Name, n.dir, layers, l.peer, peersbin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, err := os.OpenFile(filepath.Join(n.dir, "boot.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("boot %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	n.cmd, n.exited = cmd, exited
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			out, _ := os.ReadFile(filepath.Join(n.dir, "boot.log"))
			n.cmd = nil
			return fmt.Errorf("boot %s: init exited: %s", n.Name, strings.TrimSpace(string(out)))
		default:
		}
		if _, err := os.Stat(ready); err == nil {
			if pid := childOf(cmd.Process.Pid); pid != 0 {
				n.holder = pid
				n.boots++
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.kill()
	return fmt.Errorf("boot %s: not ready within 20s", n.Name)
}

// childOf is the first child of pid (unshare --fork has exactly one), or 0.
func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			c, _ := strconv.Atoi(f[0])
			return c
		}
		return 0
	}
	// Kernels without /proc/…/children: look for a process whose parent it is.
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c)); err == nil {
			s := string(st)
			if i := strings.LastIndexByte(s, ')'); i > 0 {
				if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(pid) {
					return c
				}
			}
		}
	}
	return 0
}

// kill powers the node off: SIGKILL to its init (the kernel then kills
// every process of its pid namespace) and to every other process in its
// network namespace, until none is left (bounded). Its /run and /dev/shm
// vanish with its mount namespace; its disk stays. n.mu is held.
func (n *Node) kill() {
	if n.cmd != nil {
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	}
	if n.holder != 0 {
		syscall.Kill(n.holder, syscall.SIGKILL)
	}
	if n.netns != "" {
		if fi, err := os.Stat("/run/netns/" + n.netns); err == nil {
			want := fmt.Sprintf("net:[%d]", inode(fi))
			for i := 0; i < 100 && killNetns(want) > 0; i++ {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	if n.exited != nil {
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
		}
	}
	n.cmd, n.exited, n.holder = nil, nil, 0
}

// killNetns sends SIGKILL to every process in network namespace want
// ("net:[inode]") and says how many it found.
func killNetns(want string) int {
	found := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == os.Getpid() {
			continue
		}
		if got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p)); err == nil && got == want {
			// A zombie cannot be killed: it is gone once its parent reaps it.
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil {
				if i := strings.LastIndexByte(string(st), ')'); i > 0 && strings.HasPrefix(string(st[i+1:]), " Z") {
					continue
				}
			}
			syscall.Kill(p, syscall.SIGKILL)
			found++
		}
	}
	return found
}

// PID is the pid of the node's init (for nsenter --target), or 0 while it
// is off.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.holder
}

// Up reports whether the node is powered on.
func (n *Node) Up() bool { return n.PID() != 0 }

// Boots counts the node's boots (1 after the lab started; +1 per fencing).
func (n *Node) Boots() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.boots
}

// nsenterArgs enter every namespace of the node whose init is pid.
func nsenterArgs(pid int) []string {
	return []string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--ipc", "--net", "--pid"}
}

// Exec runs a bash script as root on the node (inside all its namespaces,
// like a root shell there) with args as $1…, and returns its combined
// output. It fails while the node is off.
func (n *Node) Exec(ctx context.Context, script string, args ...string) (string, error) {
	pid := n.PID()
	if pid == 0 {
		return "", fmt.Errorf("%s is powered off", n.Name)
	}
	all := append(nsenterArgs(pid), append([]string{"--", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
		"bash", "-c", script, "bash"}, args...)...)
	cmd := exec.CommandContext(ctx, "nsenter", all...)
	cmd.WaitDelay = 5 * time.Second // a daemon the script started keeps no pipe of ours open for long
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", err, ctx.Err())
	}
	return string(out), err
}

// PowerOff kills the node as a power cut would; it stays off until
// PowerOn. Its SSH port then closes every connection.
func (n *Node) PowerOff() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.kill()
	n.lab.power.setState(n, false)
}

// PowerOn boots a node that is off and starts its cluster daemons, as its
// init system would at boot.
func (n *Node) PowerOn(ctx context.Context) error {
	n.mu.Lock()
	err := n.boot()
	n.mu.Unlock()
	if err != nil {
		return err
	}
	n.lab.power.setState(n, true)
	return n.startServices(ctx, n.services()...)
}

// services are the units the node starts at boot.
func (n *Node) services() []string {
	if n.Remote {
		return []string{"pacemaker_remote"}
	}
	return []string{"corosync", "pacemaker"}
}

// startServices runs `systemctl start UNIT` (the lab's shim) on the node.
func (n *Node) startServices(ctx context.Context, units ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for _, u := range units {
		if out, err := n.Exec(ctx, `systemctl start "$1"`, u); err != nil {
			return fmt.Errorf("%s: systemctl start %s: %v: %s", n.Name, u, err, strings.TrimSpace(out))
		}
	}
	return nil
}

// Log is the tail (lines) of a log file on the node's disk, e.g.
// "var/log/pacemaker/pacemaker.log"; it works while the node is off.
func (n *Node) Log(rel string, lines int) string {
	b, err := os.ReadFile(filepath.Join(n.dir, "disk", strings.ReplaceAll(strings.TrimPrefix(filepath.Dir(rel), "/"), "/", "-"), filepath.Base(rel)))
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
