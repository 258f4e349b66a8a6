package clusterlab

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// writeAuthkey replaces /etc/pacemaker/authkey on a node as pcs writes it
// (hacluster:haclient 0400).
func writeAuthkey(t *testing.T, n *Node, key []byte) {
	t.Helper()
	out, err := n.Exec(t.Context(), `set -e
base64 -d >/etc/pacemaker/authkey.new <<<"$1"
chown hacluster:haclient /etc/pacemaker/authkey.new
chmod 0400 /etc/pacemaker/authkey.new
mv /etc/pacemaker/authkey.new /etc/pacemaker/authkey
cmp -s /etc/pacemaker/authkey <(base64 -d <<<"$1")`, base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatalf("authkey on %s: %v: %s", n.Name, err, out)
	}
}

// Real fencing: a full node whose authkey differs cannot connect to the
// remote node; moving the connection there fences the remote node, which
// the power switch kills and boots again; a cleanup brings it back. A
// fenced full node stays off 30 s and rejoins.
func fencing(t *testing.T, version string) {
	c := Start(t, Options{Version: version})
	ctx := t.Context()
	before, err := c.DummyStarts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The connection runs on node1 (the first node to start it); node2's
	// controller has never read the key: a wrong one there is read at the
	// next connection.
	wrong := make([]byte, 4096)
	rand.Read(wrong)
	writeAuthkey(t, c.Nodes[1], wrong)
	began := time.Now()
	err = c.MoveRemote(ctx, c.Nodes[1].Name)
	t.Logf("move to %s with a mismatched key: %v", c.Nodes[1].Name, err)
	if err == nil {
		t.Fatal("the remote connection moved to a node with another authkey")
	}
	// Wait for the fencing itself (the move may fail first with a failed action).
	for i := 0; i < 100 && len(c.FenceHistory()) == 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	ev := c.FenceHistory()
	if len(ev) != 1 || ev[0].Victim != c.Remote.Name || ev[0].Err != "" {
		t.Fatalf("fence history: %+v", ev)
	}
	t.Logf("remote node fenced %v after the move (requested by %s)", ev[0].At.Sub(began).Round(time.Millisecond), ev[0].Requester)
	// Put the right key back and restart node2's pacemaker (its controller
	// may keep the wrong key 60 s), clean up: the remote node is back.
	writeAuthkey(t, c.Nodes[1], c.PacemakerAuthkey())
	restart := time.Now()
	if out, err := c.Nodes[1].Exec(ctx, "systemctl restart pacemaker"); err != nil {
		t.Fatalf("restart pacemaker on %s: %v: %s", c.Nodes[1].Name, err, out)
	}
	t.Logf("systemctl restart pacemaker on %s: %v", c.Nodes[1].Name, time.Since(restart).Round(time.Millisecond))
	deadline := time.Now().Add(2 * time.Minute)
	for c.Remote.Boots() < 2 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if c.Remote.Boots() != 2 {
		t.Fatalf("the remote node did not boot again after its fencing (boots %d)", c.Remote.Boots())
	}
	t.Logf("remote node booted again %v after the move", time.Since(began).Round(time.Millisecond))
	if err := c.Cleanup(ctx, c.Remote.Name); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("remote node online and settled %v after the move", time.Since(began).Round(time.Millisecond))
	s, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, f := range s.Fencing {
		seen = seen || (f.Target == c.Remote.Name && f.Status == "success")
	}
	if !seen {
		t.Errorf("the cluster's fence history has no successful fencing of %s: %+v", c.Remote.Name, s.Fencing)
	}
	after, err := c.DummyStarts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !after[DummyRemote].At.After(before[DummyRemote].At) {
		t.Errorf("%s did not restart after the remote node's fencing: %+v → %+v", DummyRemote, before, after)
	}
	if err := c.Cleanup(ctx, ""); err != nil {
		t.Fatal(err)
	}
	// With the right key everywhere, a forced reconnect works.
	if to, err := c.ForceReconnect(ctx); err != nil {
		t.Fatalf("reconnect to %s: %v", to, err)
	}

	// A full node fenced by the cluster: off 30 s, then it rejoins.
	victim := c.Nodes[2]
	began = time.Now()
	if out, err := c.Nodes[0].Exec(ctx, `stonith_admin --reboot "$1" 2>&1`, victim.Name); err != nil {
		t.Fatalf("stonith_admin --reboot %s: %v: %s", victim.Name, err, out)
	}
	t.Logf("stonith_admin --reboot %s returned after %v", victim.Name, time.Since(began).Round(time.Millisecond))
	if victim.Up() && victim.Boots() == 1 {
		t.Fatalf("%s still up after its fencing", victim.Name)
	}
	if err := c.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s back and the cluster settled %v after its fencing", victim.Name, time.Since(began).Round(time.Millisecond))
	if victim.Boots() != 2 {
		t.Errorf("%s boots: %d", victim.Name, victim.Boots())
	}
	if ev := c.FenceHistory(); len(ev) != 2 || ev[1].Victim != victim.Name {
		t.Errorf("fence history: %+v", ev)
	}
	if log := victim.Log("var/log/pacemaker/pacemaker.log", 2000); strings.Contains(log, "allegedly just fenced") {
		t.Errorf("%s saw its own fencing after its reboot", victim.Name)
	}
}

func TestFencing215(t *testing.T) { fencing(t, "2.1.5") }

func TestFencing302(t *testing.T) { fencing(t, "3.0.2") }
