// Package clusterlab runs a live Pacemaker cluster on this machine for
// tests: 3 full nodes (corosync 3 with knet + pacemakerd) and one Pacemaker
// Remote node (pacemaker-remoted only), with real fencing and Dummy
// resources, on Debian's Pacemaker 2.1.5 or on the 3.0.2 build of
// scripts/peers.sh (internal/pcmklab), same corosync. pcmkeys reaches the
// nodes exactly as real ones: by SSH to 127.0.0.1:Port with the host keys in
// KnownHosts and the client key IdentityFile (as internal/sshlab).
//
//	c := clusterlab.Start(t, clusterlab.Options{Version: "3.0.2"})
//	// … run pcmkeys against c.Nodes and c.Remote …
//	if err := c.WaitSettled(ctx); err != nil { t.Fatal(err) }
//	if ev := c.FenceHistory(); len(ev) > 0 { t.Fatalf("fenced: %+v", ev) }
//
// # Facts it rests on (checked on Debian 12, 2 cores; see docs/testing.md)
//
//   - Debian's `pacemaker` Conflicts with `pacemaker-remote`. Neither is
//     forced onto the machine: scripts/clusterlab-deps.sh unpacks both (and
//     their libraries and tools) into ~/.cache/pcmkeys/debian-pacemaker-V/,
//     and the lab lays that tree over /usr inside the nodes only, with a
//     layer of its own on top that hides what the kind of node would not
//     have (pacemaker-remoted on full nodes; pacemakerd, corosync and
//     /usr/lib/pacemaker on the remote node, so `pacemakerd --version ||
//     pacemaker-remoted --version` answers as on a real one). corosync is
//     an ordinary install (.ci/run). For 3.0.2 the layer links /usr/sbin's
//     Pacemaker programs to the build (RUNPATH to its lib; its fenced looks
//     for agents in its own sbin, so fence_lab is laid over that too; its
//     OCF root is /usr/lib/ocf, Debian's agents). Nothing needs fence-agents.
//   - Each node has a persistent network namespace (ip netns) with a veth
//     to a bridge in a private "switch" namespace; addresses 10.250.0.0/24
//     exist only there, nothing is routed out (never 192.0.2.0/24: that is
//     this machine's real network). Each boot gets fresh pid, mount, UTS
//     (hostname = node name) and IPC namespaces, private tmpfs /run and
//     /dev/shm (libqb IPC uses abstract sockets per network namespace and
//     /dev/shm buffers), and the node's "disk" (a directory of the lab)
//     bind-mounted on /etc/corosync, /etc/pacemaker, /var/lib/pacemaker,
//     /var/lib/corosync, /var/log/pacemaker, /var/log/corosync, /root,
//     /home, plus an overlay on /etc whose upper layer is on the disk
//     (chpasswd on a node never touches the machine). The disk survives
//     fencing; /run does not.
//   - Its own pid namespace is this lab's addition: `pidof pacemakerd` on a
//     node sees only that node, and its init (bash, which reaps adopted
//     children; this machine's pid 1 does not) takes the daemons' orphans.
//   - No systemd: corosync -f and pacemakerd run directly, started by a
//     `systemctl` shim inside the nodes, so `systemctl restart pacemaker`
//     and `systemctl restart pacemaker_remote` work unchanged.
//   - corosync.conf: knet, the 3 full nodes, crypto with a 256-byte
//     /etc/corosync/authkey, token 5000 (membership stays stable on 2 busy
//     cores). At start corosync runs on all 3 before any pacemakerd, or the
//     first DC would fence the node it has not seen yet (startup-fencing).
//   - Real fencing: fence_lab (a fence agent laid over the fence agent
//     directory) asks the lab's power switch, a loop in the test process,
//     to SIGKILL every process of the victim (its /run and /dev/shm vanish)
//     and to boot it again. A fenced full node stays off 30 s: longer than
//     corosync needs to see it leave (token + consensus, ~12 s), or it
//     rejoins, sees its own fencing ("We were allegedly just fenced") and
//     shuts down.
//   - The CIB: stonith-enabled=true, the fence device, an
//     ocf:pacemaker:remote connection resource (server = the remote node's
//     address, no reconnect_interval), resource-stickiness=1, and two
//     ocf:pacemaker:Dummy, one preferring the remote node and one the first
//     full node. A Dummy's state file (/run/Dummy-ID.state on its node) has
//     the time of its last start ([Cluster.DummyStarts]).
//   - Timings here (smoke and fencing tests, both versions alike): namespaces
//     and boot 0.2–0.3 s; corosync quorate with 3 members 4.5 s; settled
//     (all online, remote connected, Dummies started) ~15 s after start with
//     dc-deadtime=5s (about 30 s with the default 20 s); about 0.42 GB
//     (proportional set size of every process on the nodes). `systemctl
//     restart pacemaker` on a full node: 0.3–0.9 s, settled after ~4 s.
//     Moving the remote connection with the right key: ~1 s. A node with
//     another authkey taking the connection → remote node fenced 0.8–1 s
//     after the move (2.1.5: "Required key not available"/migrate_from
//     "invalid parameter"; 3.0.2: "Key was rejected by service").
//     `stonith_admin --reboot` of a full node returns after ~12.5 s; the
//     node is back and the cluster settled after 37–48 s.
package clusterlab

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/pcmklab"
)

// Options shape a lab.
type Options struct {
	// Version is "2.1.5" (Debian's Pacemaker, the default) or "3.0.2"
	// (scripts/peers.sh's build).
	Version string
	// FullOff and RemoteOff are how long a fenced node stays off before it
	// boots again (defaults 30 s and 10 s).
	FullOff, RemoteOff time.Duration
	// Logf receives the lab's own log lines (Start sets t.Logf).
	Logf func(format string, args ...any)
}

// Timings of a lab's start.
type Timings struct {
	Boot     time.Duration // namespaces, disks, nodes booted
	Corosync time.Duration // corosync quorate with 3 members
	Settled  time.Duration // Pacemaker: all online, remote connected, resources started
	Total    time.Duration
}

// Cluster is a running lab.
type Cluster struct {
	Dir          string // the lab's files
	Version      string // Pacemaker version of every node
	KnownHosts   string // known_hosts with every node's key
	IdentityFile string // the client key every node accepts for root
	Nodes        []*Node
	Remote       *Node
	Timings      Timings

	opts   Options
	id     string // netns name prefix
	deb    string // Debian's unpacked Pacemaker
	peer   string // the 3.0.2 build, or ""
	power  *powerSwitch
	netnss []string // created network namespaces, the switch's last
	// authkeys: "corosync" (256 bytes) and "pacemaker" (4096 bytes, the same
	// on every node, hacluster:haclient 0400 as pcs writes it).
	authkeys map[string][]byte
}

// PacemakerAuthkey is the /etc/pacemaker/authkey the lab gave every node.
func (c *Cluster) PacemakerAuthkey() []byte { return append([]byte(nil), c.authkeys["pacemaker"]...) }

// Names and addresses of the lab's nodes.
var (
	FullNames  = []string{"node1", "node2", "node3"}
	RemoteName = "remote1"
)

// SkipReason says why a lab of this version cannot run here, or "".
func SkipReason(version string) string {
	if os.Geteuid() != 0 {
		return "the cluster lab needs root (namespaces, mounts, daemons); CI runs as root"
	}
	for _, bin := range []string{"ip", "nsenter", "unshare", "bash", "ss", "pidof", "setsid", "ssh-keygen", "/usr/sbin/sshd", "corosync", "corosync-cfgtool", "corosync-quorumtool"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not installed (.ci/run installs corosync, openssh-server, iproute2 and util-linux)"
		}
	}
	if b, _ := os.ReadFile("/proc/filesystems"); !strings.Contains(string(b), "\toverlay\n") {
		return "this kernel has no overlayfs"
	}
	if _, err := os.Stat("/proc/self/ns/pid"); err != nil {
		return "this kernel has no namespaces"
	}
	if _, err := user.Lookup("hacluster"); err != nil {
		return "no user hacluster (apt-get install pacemaker-remote; .ci/run does)"
	}
	if debRoot() == "" {
		return "Debian's Pacemaker is not unpacked for the cluster lab: run scripts/clusterlab-deps.sh (scripts/test.sh does)"
	}
	switch version {
	case "", "2.1.5":
	case pcmklab.Version:
		if r := pcmklab.SkipReason(); r != "" {
			return r
		}
	default:
		return "unknown Pacemaker version " + version + " (2.1.5 or 3.0.2)"
	}
	return ""
}

// debRoot finds scripts/clusterlab-deps.sh's tree (the newest), or "".
func debRoot() string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		cache = filepath.Join(os.Getenv("HOME"), ".cache")
	}
	m, _ := filepath.Glob(filepath.Join(cache, "pcmkeys", "debian-pacemaker-*", ".pcmkeys-complete"))
	sort.Strings(m)
	if len(m) == 0 {
		return ""
	}
	dir := filepath.Dir(m[len(m)-1])
	if strings.ContainsAny(dir, ",:") { // overlayfs options cannot hold them
		return ""
	}
	return dir
}

// Start skips the test when [SkipReason] says so, starts a lab, waits
// until it has settled, and stops it when the test ends (with the nodes'
// log tails if the test failed).
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if r := SkipReason(opts.Version); r != "" {
		t.Skip(r)
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.logTails()
		}
		c.Stop()
	})
	return c
}

// logTails logs the end of every node's cluster logs.
func (c *Cluster) logTails() {
	for _, n := range c.All() {
		for _, f := range []string{"var/log/pacemaker/pacemaker.log", "var/log/corosync/corosync.log"} {
			if n.Remote && strings.Contains(f, "corosync") {
				continue
			}
			c.logf("%s %s:\n%s", n.Name, f, n.Log(f, 40))
		}
	}
}

// All is the full nodes and the remote node.
func (c *Cluster) All() []*Node { return append(append([]*Node(nil), c.Nodes...), c.Remote) }

// Node is the node of that name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.All() {
		if n != nil && n.Name == name {
			return n
		}
	}
	return nil
}

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf("clusterlab: "+format, args...)
	}
}

// Stop powers every node off, removes the namespaces and the lab's files.
// Nothing of the lab is left: no process, mount or namespace.
func (c *Cluster) Stop() {
	if c.power != nil {
		c.power.close()
	}
	for _, n := range c.All() {
		if n == nil {
			continue
		}
		if n.fwd != nil {
			n.fwd.Close()
		}
		n.mu.Lock()
		n.kill()
		n.mu.Unlock()
	}
	for _, ns := range c.netnss {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			c.logf("ip netns del %s: %v: %s", ns, err, out)
		}
	}
	c.netnss = nil
	if keep := os.Getenv("PCMKEYS_CLUSTERLAB_LOGS"); keep != "" && c.Dir != "" {
		// The nodes' logs outlive the lab there, for a developer to read.
		for _, n := range c.All() {
			if n != nil && n.dir != "" {
				dst := filepath.Join(keep, c.id, n.Name)
				os.MkdirAll(dst, 0o755)
				exec.Command("sh", "-c", `cp -r "$1"/disk/var-log-* "$2"/`, "sh", n.dir, dst).Run()
			}
		}
	}
	if c.Dir != "" {
		os.RemoveAll(c.Dir)
	}
}

// Memory is the memory (proportional set size, bytes) of every process
// on the lab's nodes.
func (c *Cluster) Memory() int64 {
	want := map[string]bool{}
	for _, n := range c.All() {
		if fi, err := os.Stat("/run/netns/" + n.netns); err == nil {
			want[fmt.Sprintf("net:[%d]", inode(fi))] = true
		}
	}
	var total int64
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/net"); err != nil || !want[ns] {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/smaps_rollup")
		for _, line := range strings.Split(string(b), "\n") {
			var kb int64
			if _, err := fmt.Sscanf(line, "Pss: %d kB", &kb); err == nil {
				total += kb * 1024
				break
			}
		}
	}
	return total
}
