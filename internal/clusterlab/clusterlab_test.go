package clusterlab

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sshRun runs a command on a node as pcmkeys would reach it: ssh to
// 127.0.0.1:Port with the lab's known_hosts and client key.
func sshRun(t *testing.T, c *Cluster, n *Node, command string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh", "-p", strconv.Itoa(n.Port), "-i", c.IdentityFile,
		"-o", "UserKnownHostsFile="+c.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10", "root@127.0.0.1", command).CombinedOutput()
	return string(out), err
}

// checkLeftovers fails when anything of a stopped lab remains.
func checkLeftovers(t *testing.T, c *Cluster) {
	t.Helper()
	if _, err := os.Stat(c.Dir); err == nil {
		t.Errorf("lab dir %s left", c.Dir)
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), c.id+"-") {
			t.Errorf("network namespace %s left", e.Name())
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), c.Dir) || strings.Contains(string(mounts), c.id) {
		t.Errorf("mounts of the lab left:\n%s", mounts)
	}
}

// smoke starts a lab of one version and checks what every test relies on.
func smoke(t *testing.T, version string) {
	c := Start(t, Options{Version: version})
	tm := c.Timings
	t.Logf("Pacemaker %s lab: booted %v, corosync quorate %v, settled %v, SSH up %v; memory %.2f GB",
		c.Version, tm.Boot.Round(time.Millisecond), tm.Corosync.Round(time.Millisecond), tm.Settled.Round(time.Millisecond),
		tm.Total.Round(time.Millisecond), float64(c.Memory())/1e9)
	ctx := t.Context()

	// Every node by SSH, as pcmkeys reaches it: the node's own world.
	for _, n := range c.All() {
		out, err := sshRun(t, c, n, `hostname; { pacemakerd --version || pacemaker-remoted --version; } 2>/dev/null | head -n1; ls /etc/pacemaker; pidof pacemakerd corosync pacemaker-remoted | wc -w`)
		if err != nil {
			t.Fatalf("ssh %s: %v: %s", n.Name, err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 4 || lines[0] != n.Name || !strings.Contains(lines[1], "Pacemaker "+version) || lines[2] != "authkey" {
			t.Fatalf("%s by SSH: %q", n.Name, out)
		}
		want := "2" // corosync and pacemakerd
		if n.Remote {
			want = "1" // pacemaker-remoted only
		}
		if lines[3] != want {
			t.Errorf("%s runs %s of pacemakerd/corosync/pacemaker-remoted, want %s: %q", n.Name, lines[3], want, out)
		}
	}
	// crm_mon works on the remote node too (remoted's proxy).
	if out, err := sshRun(t, c, c.Remote, "crm_mon -1 --output-as=xml | grep -c 'online=\"true\"'"); err != nil || strings.TrimSpace(out) != "4" {
		t.Errorf("crm_mon on the remote node: %v: %q", err, out)
	}
	starts, err := c.DummyStarts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if starts[DummyRemote].Node != c.Remote.Name || starts[DummyNode].Node != c.Nodes[0].Name {
		t.Errorf("Dummies: %+v", starts)
	}
	if f, err := c.FailedActions(ctx); err != nil || len(f) != 0 {
		t.Errorf("failed actions: %v %+v", err, f)
	}
	if ev := c.FenceHistory(); len(ev) != 0 {
		t.Errorf("fenced while starting: %+v", ev)
	}
	// A graceful pacemaker restart on a full node comes back settled.
	began := time.Now()
	if out, err := sshRun(t, c, c.Nodes[2], "systemctl restart pacemaker"); err != nil {
		t.Fatalf("systemctl restart pacemaker: %v: %s", err, out)
	}
	restarted := time.Since(began)
	if err := c.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("systemctl restart pacemaker on %s: %v, settled after %v", c.Nodes[2].Name, restarted.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if ev := c.FenceHistory(); len(ev) != 0 {
		t.Errorf("fenced by a graceful restart: %+v", ev)
	}

	c.Stop()
	checkLeftovers(t, c)
}

func TestSmoke215(t *testing.T) { smoke(t, "2.1.5") }

func TestSmoke302(t *testing.T) { smoke(t, "3.0.2") }
