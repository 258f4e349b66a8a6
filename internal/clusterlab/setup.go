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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/pcmklab"
)

var labSeq atomic.Int64

// New starts a lab outside a test and waits until it has settled (bounded);
// Stop it. [Start] is the usual way.
func New(opts Options) (_ *Cluster, err error) {
	began := time.Now()
	if opts.Version == "" {
		opts.Version = "2.1.5"
	}
	if opts.FullOff == 0 {
		opts.FullOff = 30 * time.Second
	}
	if opts.RemoteOff == 0 {
		opts.RemoteOff = 10 * time.Second
	}
	if r := SkipReason(opts.Version); r != "" {
		return nil, fmt.Errorf("clusterlab: %s", r)
	}
	removeStale()
	dir, err := os.MkdirTemp("", "pcmkeys-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Version: opts.Version, opts: opts, deb: debRoot(),
		KnownHosts: filepath.Join(dir, "known_hosts"), IdentityFile: filepath.Join(dir, "id_ed25519"),
		id: fmt.Sprintf("pcmkcl%d-%d", os.Getpid(), labSeq.Add(1))}
	if opts.Version == pcmklab.Version {
		c.peer = pcmklab.Dir()
	}
	defer func() {
		if err != nil {
			c.logTails()
			c.Stop()
		}
	}()
	if err := c.prepare(); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.All()))
	for i, n := range c.All() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.mu.Lock()
			errs[i] = n.boot()
			n.mu.Unlock()
			if errs[i] == nil {
				c.power.setState(n, true)
			}
		}()
	}
	wg.Wait()
	if err := firstErr(errs); err != nil {
		return nil, err
	}
	c.Timings.Boot = time.Since(began)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// corosync on every full node before any pacemakerd: the first DC
	// would fence a node it has not seen (startup-fencing).
	if err := c.each(ctx, c.Nodes, func(n *Node) error { return n.startServices(ctx, "corosync") }); err != nil {
		return nil, err
	}
	if err := c.waitMembers(ctx); err != nil {
		return nil, err
	}
	c.Timings.Corosync = time.Since(began)
	if err := c.each(ctx, c.All(), func(n *Node) error {
		if n.Remote {
			return n.startServices(ctx, "pacemaker_remote")
		}
		return n.startServices(ctx, "pacemaker")
	}); err != nil {
		return nil, err
	}
	if err := c.WaitSettled(ctx); err != nil {
		return nil, err
	}
	c.Timings.Settled = time.Since(began)
	for _, n := range c.All() {
		if err := n.checkSSH(); err != nil {
			return nil, err
		}
	}
	c.Timings.Total = time.Since(began)
	return c, nil
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// each runs f for every node at once.
func (c *Cluster) each(ctx context.Context, nodes []*Node, f func(*Node) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f(n) }()
	}
	wg.Wait()
	return firstErr(errs)
}

// waitMembers waits until corosync on the first node is quorate with every
// full node a member.
func (c *Cluster) waitMembers(ctx context.Context) error {
	want := fmt.Sprintf("Total votes:      %d", len(c.Nodes))
	var out string
	for ctx.Err() == nil {
		out, _ = c.Nodes[0].Exec(ctx, "corosync-quorumtool -s")
		if strings.Contains(out, "Quorate:          Yes") && strings.Contains(out, want) {
			return nil
		}
		sleep(ctx, 500*time.Millisecond)
	}
	return fmt.Errorf("corosync not quorate with %d members: %v: %s", len(c.Nodes), ctx.Err(), out)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// removeStale removes the namespaces of labs whose process is gone (a test
// binary killed before its cleanup).
func removeStale() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "pcmkcl")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		if fi, err := os.Stat("/run/netns/" + e.Name()); err == nil {
			killNetns(fmt.Sprintf("net:[%d]", inode(fi)))
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

func inode(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }

// prepare makes the client key, the nodes, their disks and layers, the
// network and the SSH listeners.
func (c *Cluster) prepare() error {
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pcmkeys-cluster-lab", "-f", c.IdentityFile).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(c.IdentityFile + ".pub")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "authorized_keys"), pub, 0o644); err != nil {
		return err
	}
	for i, name := range FullNames {
		c.Nodes = append(c.Nodes, &Node{Name: name, Addr: fmt.Sprintf("10.250.0.%d", 11+i), lab: c})
	}
	c.Remote = &Node{Name: RemoteName, Addr: "10.250.0.21", Remote: true, lab: c}
	if c.power, err = newPowerSwitch(c); err != nil {
		return err
	}
	if err := c.layers(); err != nil {
		return err
	}
	if err := c.network(); err != nil {
		return err
	}
	var kh strings.Builder
	for _, n := range c.All() {
		n.netns = c.id + "-" + n.Name
		n.dir = filepath.Join(c.Dir, n.Name)
		if err := os.Mkdir(n.dir, 0o755); err != nil {
			return err
		}
		if err := c.disk(n); err != nil {
			return err
		}
		if err := n.setupSSH(); err != nil {
			return err
		}
		kh.WriteString(n.HostKeyLine + "\n")
	}
	return os.WriteFile(c.KnownHosts, []byte(kh.String()), 0o644)
}

// network makes the switch namespace with its bridge and every node's
// namespace with a veth to it (10.250.0.0/24 exists only there).
func (c *Cluster) network() error {
	sw := c.id + "-switch"
	run := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("netns", "add", sw); err != nil {
		return err
	}
	c.netnss = append(c.netnss, sw)
	if err := run("-n", sw, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	if err := run("-n", sw, "link", "set", "br0", "up"); err != nil {
		return err
	}
	for i, n := range c.All() {
		ns := c.id + "-" + n.Name
		if err := run("netns", "add", ns); err != nil {
			return err
		}
		c.netnss = append([]string{ns}, c.netnss...)
		port := fmt.Sprintf("v%d", i+1)
		for _, args := range [][]string{
			{"-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", sw, "link", "set", port, "master", "br0", "up"},
			{"-n", ns, "addr", "add", n.Addr + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		} {
			if err := run(args...); err != nil {
				return err
			}
		}
	}
	return nil
}
