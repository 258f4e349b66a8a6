package rotate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/internal/clusterlab"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// liveCluster starts a live cluster lab (3 corosync/knet + Pacemaker
// nodes, a Pacemaker Remote node, real fencing, Dummies) and an Env whose
// config lists it, with its running authkey adopted into the store (the
// one-step adoption: import).
func liveCluster(t *testing.T, version string) (*Env, *clusterlab.Cluster) {
	t.Helper()
	if r := clusterlab.SkipReason(version); r != "" {
		t.Skip(r)
	}
	c := clusterlab.Start(t, clusterlab.Options{Version: version})
	var nodes strings.Builder
	for _, n := range c.Nodes {
		fmt.Fprintf(&nodes, "  - {name: %s, address: 127.0.0.1, port: %d}\n", n.Name, n.Port)
	}
	dir := t.TempDir()
	doc := fmt.Sprintf(`cluster: lab
store: {type: file, path: %s/store}
ssh: {known_hosts: %s, identity_files: [%s], command_timeout: 60s, use_ssh_config: false}
cib: {port: 5403, password: unmanaged}
audit: {path: %s/audit.jsonl}
nodes:
%sremote_nodes:
  - {name: %s, address: 127.0.0.1, port: %d}
`, dir, c.KnownHosts, c.IdentityFile, dir, nodes.String(), c.Remote.Name, c.Remote.Port)
	if err := os.WriteFile(dir+"/pcmkeys.yaml", []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	e := labEnv(t, doc, dir)
	if _, err := Import(context.Background(), e, ImportRequest{Host: c.Nodes[0].Name}); err != nil {
		t.Fatalf("adopt the running cluster's authkey: %v", err)
	}
	return e, c
}

// TestLiveAuthkeyRotation (issue 11): rotate --authkey --restart on a live
// cluster ends with zero fencing, zero resource restarts (the Dummies'
// state files unchanged), the remote node online, every node holding the
// new key, and a forced reconnect of the remote node succeeding with it.
func TestLiveAuthkeyRotation(t *testing.T) {
	for _, version := range []string{"2.1.5", "3.0.2"} {
		t.Run(version, func(t *testing.T) {
			e, c := liveCluster(t, version)
			ctx := context.Background()
			before, err := c.DummyStarts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			fenced := len(c.FenceHistory())
			start := time.Now()
			rep, err := Rotate(ctx, e, Request{Authkey: true, Restart: true})
			took := time.Since(start)
			for _, s := range rep.Timeline {
				t.Logf("%8s %-8s %s: %s", s.At, s.Host, s.Step, s.Result)
			}
			if err != nil {
				t.Fatalf("rotate --authkey --restart: %v\n%v", err, rep.Notes)
			}
			t.Logf("Pacemaker %s: the live authkey rotation took %s", version, took.Round(100*time.Millisecond))
			if err := c.WaitSettled(ctx); err != nil {
				t.Fatal(err)
			}
			if ev := c.FenceHistory(); len(ev) != fenced {
				t.Errorf("fencing during the rotation: %+v", ev[fenced:])
			}
			after, err := c.DummyStarts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for id, b := range before {
				if a := after[id]; a != b {
					t.Errorf("%s restarted or moved: %+v -> %+v", id, b, a)
				}
			}
			key, err := e.Store.Get(ctx, keystore.AuthkeyID)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range c.All() {
				out, err := n.Exec(ctx, "sha256sum < /etc/pacemaker/authkey | cut -c1-64")
				if err != nil || strings.TrimSpace(out) != sha(key.Key) {
					t.Errorf("%s does not hold the new authkey: %v", n.Name, err)
				}
			}
			if to, err := c.ForceReconnect(ctx); err != nil {
				t.Errorf("a new connection to the remote node after the rotation: %v", err)
			} else if err := c.WaitSettled(ctx); err != nil {
				t.Errorf("the remote node after moving its connection to %s: %v", to, err)
			}
			if ev := c.FenceHistory(); len(ev) != fenced {
				t.Errorf("fencing after the forced reconnect: %+v", ev[fenced:])
			}
		})
	}
}

// TestLiveAuthkeyRefusals (issue 11): the live cluster is read before
// anything changes: a failed action refuses the rotation (exit 1) and a
// remote node the config does not list refuses it as bad input (exit 2);
// --override goes past a health check. Nothing changes when refused.
func TestLiveAuthkeyRefusals(t *testing.T) {
	e, c := liveCluster(t, "2.1.5")
	ctx := context.Background()
	before, _ := e.Store.Get(ctx, keystore.AuthkeyID)
	unchanged := func(what string) {
		t.Helper()
		now, _ := e.Store.Get(ctx, keystore.AuthkeyID)
		if now.Version.Version != before.Version.Version {
			t.Errorf("%s: the store changed", what)
		}
		out, err := c.Nodes[0].Exec(ctx, "sha256sum < /etc/pacemaker/authkey | cut -c1-64; crm_attribute --type crm_config --name maintenance-mode --query --quiet 2>/dev/null || echo unset")
		if err != nil || out != sha(before.Key)+"\nunset\n" {
			t.Errorf("%s: node1 changed: %q %v", what, out, err)
		}
	}

	// A bare write of the authkey on a live cluster: refused (exit 2); the
	// scheduled --due leaves the authkey to the live procedure.
	if _, err := Rotate(ctx, e, Request{Authkey: true}); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "--restart") {
		t.Errorf("rotate --authkey without --restart on a live cluster: %v", err)
	}
	unchanged("a bare write")
	e.Now = func() time.Time { return time.Now().Add(400 * 24 * time.Hour) }
	rep, err := Rotate(ctx, e, Request{Due: true})
	e.Now = nil
	if err != nil || strings.Contains(fmt.Sprint(rep.Credentials), "authkey") || !strings.Contains(strings.Join(rep.Notes, " "), "rotate --authkey --restart") {
		t.Errorf("rotate --due on a live cluster with the authkey due: %v %+v %v", err, rep.Credentials, rep.Notes)
	}
	unchanged("rotate --due")

	// A remote node the config does not list would keep the old key.
	cfg := *e.Config
	cfg.Hosts = nil
	for _, h := range e.Config.Hosts {
		if h.Role != config.RoleRemoteNode {
			cfg.Hosts = append(cfg.Hosts, h)
		}
	}
	partialEnv := &Env{Config: &cfg, Store: e.Store, Operator: "tester", Parallel: 8}
	defer partialEnv.Close()
	rep, err = Rotate(ctx, partialEnv, Request{Authkey: true, Restart: true})
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "remote connection resources not in remote_nodes: remote1") {
		t.Errorf("a remote node missing from the config: %v %+v", err, rep.Prechecks)
	}
	unchanged("config mismatch")

	// A failed action: exit 1, unless overridden.
	if out, err := c.Nodes[0].Exec(ctx, "crm_resource --fail --resource "+clusterlab.DummyNode+" --node "+c.Nodes[0].Name); err != nil {
		t.Fatal(err, out)
	}
	if err := waitFailures(ctx, c); err != nil {
		t.Fatal(err)
	}
	_, err = Rotate(ctx, e, Request{Authkey: true, Restart: true})
	if !errors.Is(err, ErrClusterUnhealthy) || !strings.Contains(err.Error(), "failed-actions") {
		t.Errorf("a failed action: %v", err)
	}
	unchanged("failed action")
	e.DryRun = true
	rep, err = Rotate(ctx, e, Request{Authkey: true, Restart: true, Override: []string{"failed-actions"}})
	e.DryRun = false
	if err != nil || len(rep.Prechecks) == 0 || len(rep.Restart) != 4 {
		t.Errorf("dry run with --override failed-actions: %v %+v", err, rep)
	}
	unchanged("dry run")
	if err := c.Cleanup(ctx, ""); err != nil {
		t.Fatal(err)
	}

	// push with another authkey in the store (one restored from a backup,
	// say): on a live cluster the hosts' authkey is left as it is, and the
	// run fails naming the live procedure. (init first: the lab's store
	// holds only the authkey, and push converges every file.)
	if _, err := Init(ctx, e); err != nil {
		t.Fatal(err)
	}
	other, err := keys.Generate(keys.Authkey, e.Config.Policy.KeySize(keys.Authkey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.Put(ctx, keystore.AuthkeyID, other, keystore.PutOptions{CAS: before.Version.Version, CreatedBy: "tester"}); err != nil {
		t.Fatal(err)
	}
	rep, err = Push(ctx, e, nil)
	if !errors.Is(err, ErrPartial) || !strings.Contains(strings.Join(rep.Notes, " "), "rotate --authkey --restart") {
		t.Errorf("push of another authkey on a live cluster: %v %v", err, rep.Notes)
	}
	for _, n := range append([]*clusterlab.Node{c.Remote}, c.Nodes...) {
		if out, err := n.Exec(ctx, "sha256sum < /etc/pacemaker/authkey | cut -c1-64"); err != nil || out != sha(before.Key)+"\n" {
			t.Errorf("push on a live cluster changed %s's authkey: %q %v", n.Name, out, err)
		}
	}
}

// waitFailures waits until the cluster shows a failed action.
func waitFailures(ctx context.Context, c *clusterlab.Cluster) error {
	for i := 0; i < 60; i++ {
		if f, err := c.FailedActions(ctx); err == nil && len(f) > 0 {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return errors.New("no failed action appeared")
}

// TestLiveAuthkeyRollback (issue 11): a restart that fails midway rolls
// back: the old key is back in the store and on every host, the daemons
// restarted with the new key are restarted again, maintenance mode is
// lifted, and the cluster is healthy — no fencing, no resource restarts,
// and a forced reconnect of the remote node works.
func TestLiveAuthkeyRollback(t *testing.T) {
	e, c := liveCluster(t, "3.0.2")
	ctx := context.Background()
	e.Config.Restart.Node = `[ "$(hostname)" != node2 ] || { echo "node2 will not restart" >&2; exit 1; }; systemctl restart pacemaker`
	old, _ := e.Store.Get(ctx, keystore.AuthkeyID)
	before, _ := c.DummyStarts(ctx)
	fenced := len(c.FenceHistory())
	rep, err := Rotate(ctx, e, Request{Authkey: true, Restart: true})
	for _, s := range rep.Timeline {
		t.Logf("%8s %-8s %s: %s", s.At, s.Host, s.Step, s.Result)
	}
	if err == nil || !strings.Contains(err.Error(), "rolled back") || strings.Contains(err.Error(), "ROLLBACK DID NOT FINISH") {
		t.Fatalf("a failing restart: %v %v", err, rep.Notes)
	}
	cur, _ := e.Store.Get(ctx, keystore.AuthkeyID)
	if !cur.Key.Equal(old.Key) {
		t.Error("the store's current authkey is not the old one")
	}
	for _, n := range c.All() {
		out, err := n.Exec(ctx, "sha256sum < /etc/pacemaker/authkey | cut -c1-64")
		if err != nil || strings.TrimSpace(out) != sha(old.Key) {
			t.Errorf("%s does not hold the old authkey again: %v", n.Name, err)
		}
	}
	if out, _ := c.Nodes[0].Exec(ctx, "crm_attribute --type crm_config --name maintenance-mode --query --quiet 2>/dev/null || echo unset"); out != "unset\n" {
		t.Errorf("maintenance mode after the rollback: %q", out)
	}
	if err := c.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ForceReconnect(ctx); err != nil {
		t.Errorf("a new connection to the remote node after the rollback: %v", err)
	} else if err := c.WaitSettled(ctx); err != nil {
		t.Error(err)
	}
	if ev := c.FenceHistory(); len(ev) != fenced {
		t.Errorf("fencing: %+v", ev[fenced:])
	}
	after, _ := c.DummyStarts(ctx)
	for id, b := range before {
		if a := after[id]; a != b {
			t.Errorf("%s restarted or moved: %+v -> %+v", id, b, a)
		}
	}
}

// TestLiveAuthkeyKilledRun (issue 11): a live rotation killed (SIGKILL)
// after its first full-node restart leaves maintenance mode on and the
// daemons on mixed keys; the next run finds the killed run's marker,
// rotates again and puts maintenance mode back to what it was before the
// killed run: the cluster ends healthy, no fencing, every node on the
// store's key.
func TestLiveAuthkeyKilledRun(t *testing.T) {
	e, c := liveCluster(t, "3.0.2")
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "pcmkeys")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/pcmkeys").CombinedOutput(); err != nil {
		t.Fatalf("build pcmkeys: %v\n%s", err, out)
	}
	fenced := len(c.FenceHistory())
	cmd := exec.Command(bin, "--config", e.Config.Source, "-v", "rotate", "--authkey", "--restart")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if !killed && strings.Contains(sc.Text(), "host=node1") && strings.Contains(sc.Text(), `step="back in the cluster"`) {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatal("the run ended before node1 was restarted")
	}
	if out, _ := c.Nodes[1].Exec(ctx, "crm_attribute --type crm_config --name maintenance-mode --query --quiet"); strings.TrimSpace(out) != "true" {
		t.Fatalf("after the kill, maintenance mode is %q, want true", out)
	}
	rep, err := Rotate(ctx, e, Request{Authkey: true, Restart: true})
	for _, s := range rep.Timeline {
		t.Logf("%8s %-8s %s: %s", s.At, s.Host, s.Step, s.Result)
	}
	if err != nil {
		t.Fatalf("the run after the killed one: %v %+v", err, rep.Prechecks)
	}
	if out, _ := c.Nodes[1].Exec(ctx, "crm_attribute --type crm_config --name maintenance-mode --query --quiet 2>/dev/null || echo unset"); out != "unset\n" {
		t.Errorf("maintenance mode after the finishing run: %q, want unset as before the killed run", out)
	}
	if err := c.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	key, _ := e.Store.Get(ctx, keystore.AuthkeyID)
	for _, n := range c.All() {
		if out, _ := n.Exec(ctx, "sha256sum < /etc/pacemaker/authkey | cut -c1-64; ls /etc/pacemaker"); !strings.HasPrefix(out, sha(key.Key)) || strings.Contains(out, "pcmkeys-live-rotation") {
			t.Errorf("%s: %q", n.Name, out)
		}
	}
	if _, err := c.ForceReconnect(ctx); err != nil {
		t.Errorf("a new connection to the remote node: %v", err)
	} else if err := c.WaitSettled(ctx); err != nil {
		t.Error(err)
	}
	if ev := c.FenceHistory(); len(ev) != fenced {
		t.Errorf("fencing: %+v", ev[fenced:])
	}
}

// TestLiveAuthkeyNodeDown (issue 11): with a full node powered off, the
// rotation is refused before anything changes (the node is not online, or
// its fencing is pending); once the cluster has fenced it and it has come
// back, the rotation goes through.
func TestLiveAuthkeyNodeDown(t *testing.T) {
	e, c := liveCluster(t, "3.0.2")
	ctx := context.Background()
	before, _ := e.Store.Get(ctx, keystore.AuthkeyID)
	c.Nodes[2].PowerOff()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s, err := c.Status(ctx)
		if err == nil {
			if n := s.Node(c.Nodes[2].Name); n != nil && (!n.Online || n.Unclean) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not see node3 go")
		}
		time.Sleep(time.Second)
	}
	_, err := Rotate(ctx, e, Request{Authkey: true, Restart: true})
	if !errors.Is(err, ErrClusterUnhealthy) || !(strings.Contains(err.Error(), "nodes: not online: node3") || strings.Contains(err.Error(), "fencing")) {
		t.Errorf("rotate with node3 down: %v", err)
	}
	if now, _ := e.Store.Get(ctx, keystore.AuthkeyID); now.Version.Version != before.Version.Version {
		t.Error("the store changed")
	}
	// The cluster fences node3 (the lab's power switch boots it again
	// after 30 s): no hand of ours, which would race that reboot.
	if err := c.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Rotate(ctx, e, Request{Authkey: true, Restart: true}); err != nil {
		t.Errorf("rotate once node3 is back: %v", err)
	}
}
