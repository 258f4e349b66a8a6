package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/internal/testroot"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// onboarded is a cluster after init and onboarding alice and bob on ws1.
func onboarded(t *testing.T, store, mode string) *cluster {
	t.Helper()
	c := newClusterIn(t, store, mode, "")
	ctx := context.Background()
	if _, err := Init(ctx, c.env); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := Onboard(ctx, c.env, OnboardRequest{User: u, Clients: []string{"ws1"}}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// nodeKeys returns the identity → key lines of a node's cib-credentials.
func (c *cluster) nodeKeys(t *testing.T, node string) map[string]keys.Secret {
	t.Helper()
	entries, err := credfile.ParseCIBCredentials(c.read(t, node, "etc/pacemaker/cib-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]keys.Secret{}
	for _, e := range entries {
		out[e.Identity] = e.Key
	}
	return out
}

func (c *cluster) clientKey(t *testing.T, user string) keys.Secret {
	t.Helper()
	k, err := credfile.ParseClientKey(c.read(t, "ws1", "home/"+user+"/.pcmkeys/test.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRotateShared(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := onboarded(t, store, "shared")
		ctx := context.Background()
		old := c.key(t, keystore.CIB("hacluster"))
		rep, err := Rotate(ctx, c.env, Request{})
		if err != nil {
			t.Fatal(err)
		}
		cur := c.key(t, keystore.CIB("hacluster"))
		if cur.Version.Version != old.Version.Version+1 || cur.Key.Equal(old.Key) {
			t.Fatalf("store: version %d → %d", old.Version.Version, cur.Version.Version)
		}
		for _, n := range []string{"node1", "node2"} {
			if k := c.nodeKeys(t, n)["hacluster"]; !k.Equal(cur.Key) {
				t.Errorf("%s does not hold the new key", n)
			}
		}
		for _, u := range []string{"alice", "bob"} {
			if !c.clientKey(t, u).Equal(cur.Key) {
				t.Errorf("%s's client file does not hold the new key", u)
			}
		}
		// The shared key and hacluster's password rotate together.
		if len(rep.Credentials) != 2 || !rep.Credentials[0].Created || rep.Credentials[1].ID != "password/hacluster" || !rep.Credentials[1].Created {
			t.Errorf("report: %+v", rep.Credentials)
		}
		authBefore := c.key(t, keystore.AuthkeyID)
		if _, err := Rotate(ctx, c.env, Request{Authkey: true}); err != nil {
			t.Fatal(err)
		}
		auth := c.key(t, keystore.AuthkeyID)
		if auth.Key.Equal(authBefore.Key) || string(c.read(t, "node2", "etc/pacemaker/authkey")) != string(auth.Key) {
			t.Error("authkey rotation did not reach node2")
		}
		if !c.nodeKeys(t, "node1")["hacluster"].Equal(cur.Key) {
			t.Error("an authkey rotation changed the CIB key")
		}
	})
}

// TestRotateStagingFailureKeepsOldKey: one node refuses the staged file;
// no node changes, no temp file stays, the store keeps its version.
func TestRotateStagingFailureKeepsOldKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := onboarded(t, store, "shared")
		ctx := context.Background()
		old := c.key(t, keystore.CIB("hacluster"))
		before1 := string(c.read(t, "node1", "etc/pacemaker/cib-credentials"))
		if err := os.Chmod(c.roots["node2"].Path("etc/pacemaker"), 0o777); err != nil {
			t.Fatal(err)
		}
		rep, err := Rotate(ctx, c.env, Request{CIB: true})
		var pe *PartialError
		if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Host != "node2" {
			t.Fatalf("err = %v", err)
		}
		if got := string(c.read(t, "node1", "etc/pacemaker/cib-credentials")); got != before1 {
			t.Error("node1 changed although node2 failed to stage")
		}
		ents, _ := os.ReadDir(c.roots["node1"].Path("etc/pacemaker"))
		if len(ents) != 2 {
			t.Errorf("node1 /etc/pacemaker holds %d entries, want cib-credentials and authkey only", len(ents))
		}
		if cur := c.key(t, keystore.CIB("hacluster")); cur.Version.Version != old.Version.Version {
			t.Errorf("the store moved to version %d", cur.Version.Version)
		}
		if !c.clientKey(t, "alice").Equal(old.Key) {
			t.Error("alice's client file changed")
		}
		if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "old keys stay in force") {
			t.Errorf("notes: %v", rep.Notes)
		}
	})
}

func TestRotatePerUserAndDue(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := onboarded(t, store, "per-user")
		ctx := context.Background()
		alice, bob := c.key(t, keystore.CIB("alice")), c.key(t, keystore.CIB("bob"))
		if _, err := Rotate(ctx, c.env, Request{Users: []string{"alice"}}); err != nil {
			t.Fatal(err)
		}
		a2, b2 := c.key(t, keystore.CIB("alice")), c.key(t, keystore.CIB("bob"))
		if a2.Key.Equal(alice.Key) || !b2.Key.Equal(bob.Key) {
			t.Fatal("rotating alice must change her key and only hers")
		}
		lines := c.nodeKeys(t, "node1")
		if !lines["alice"].Equal(a2.Key) || !lines["bob"].Equal(bob.Key) || !c.clientKey(t, "alice").Equal(a2.Key) || !c.clientKey(t, "bob").Equal(bob.Key) {
			t.Error("files do not match the store after rotating alice")
		}
		if _, err := Rotate(ctx, c.env, Request{Users: []string{"mallory"}}); !errors.Is(err, ErrBadInput) {
			t.Errorf("rotate an unknown admin: %v", err)
		}
		// Nothing is due now; 91 days later the CIB keys are, the authkey not.
		rep, err := Rotate(ctx, c.env, Request{Due: true})
		if err != nil || len(rep.Credentials) != 0 {
			t.Fatalf("due now: %+v %v", rep.Credentials, err)
		}
		c.env.Now = func() time.Time { return time.Now().Add(91 * 24 * time.Hour) }
		rep, err = Rotate(ctx, c.env, Request{Due: true})
		if err != nil || len(rep.Credentials) != 2 || rep.Credentials[0].ID != "cib/alice" || rep.Credentials[1].ID != "cib/bob" {
			t.Fatalf("due after 91 days: %+v %v", rep.Credentials, err)
		}
	})
}

func TestRevokePerUser(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := onboarded(t, store, "per-user")
		ctx := context.Background()
		bob := c.key(t, keystore.CIB("bob"))
		if _, err := Revoke(ctx, c.env, []string{"alice"}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"node1", "node2"} {
			lines := c.nodeKeys(t, n)
			if _, ok := lines["alice"]; ok || !lines["bob"].Equal(bob.Key) || len(lines) != 1 {
				t.Errorf("%s after revoking alice: %v", n, len(lines))
			}
		}
		for _, f := range []string{"home/alice/.pcmkeys/test.key", "home/alice/.pcmkeys/test.env"} {
			if _, err := os.Lstat(c.roots["ws1"].Path(f)); !os.IsNotExist(err) {
				t.Errorf("%s still there: %v", f, err)
			}
		}
		if _, err := c.env.Store.Get(ctx, keystore.CIB("alice")); !errors.Is(err, keystore.ErrDestroyed) {
			t.Errorf("alice's key after revoke: %v", err)
		}
		if a, err := c.env.Store.GetAdmin(ctx, "alice"); err != nil || !a.RevocationFinished() || len(a.Clients) != 0 {
			t.Errorf("alice's record after revoke: %+v %v", a, err)
		}
		if !c.clientKey(t, "bob").Equal(bob.Key) {
			t.Error("bob's key changed")
		}
		// A runbook reruns until 0: a finished revocation says so.
		rep, err := Revoke(ctx, c.env, []string{"alice"})
		if err != nil || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "already revoked") || len(rep.Hosts) != 0 {
			t.Errorf("revoking alice again: %v %+v", err, rep)
		}
		if _, err := Revoke(ctx, c.env, []string{"carol"}); !errors.Is(err, ErrBadInput) {
			t.Errorf("revoking someone who never was an admin: %v", err)
		}
	})
}

func TestRevokeShared(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := onboarded(t, store, "shared")
		ctx := context.Background()
		old := c.key(t, keystore.CIB("hacluster"))
		if _, err := Revoke(ctx, c.env, []string{"alice"}); err != nil {
			t.Fatal(err)
		}
		cur := c.key(t, keystore.CIB("hacluster"))
		if cur.Key.Equal(old.Key) {
			t.Fatal("the shared key was not rotated")
		}
		if !c.nodeKeys(t, "node2")["hacluster"].Equal(cur.Key) || !c.clientKey(t, "bob").Equal(cur.Key) {
			t.Error("node2 or bob lacks the new shared key")
		}
		if _, err := os.Lstat(c.roots["ws1"].Path("home/alice/.pcmkeys/test.key")); !os.IsNotExist(err) {
			t.Error("alice's key file is still there")
		}
	})
}

// TestRevokeUnreachableThenRerun: alice's second client is down; revoke
// does everything else, exits partial naming it, keeps her marked (status
// reports her leftover file), and a rerun once it is back finishes.
func TestRevokeUnreachableThenRerun(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		ws2 := testroot.New(t)
		c := newClusterIn(t, store, "per-user", "  - {name: ws2, local: true}\n")
		down := true
		c.env.Connect = func(ctx context.Context, h config.Host) (distribute.Host, error) {
			switch {
			case h.Name == "ws2" && down:
				return nil, fmt.Errorf("host ws2: %w: connection refused", distribute.ErrUnreachable)
			case h.Name == "ws2":
				return distribute.NewLocal("ws2", ws2.Dir)
			}
			return distribute.NewLocal(h.Name, c.roots[h.Name].Dir)
		}
		ctx := context.Background()
		if _, err := Init(ctx, c.env); err != nil {
			t.Fatal(err)
		}
		down = false
		for _, u := range []string{"alice", "bob"} {
			if _, err := Onboard(ctx, c.env, OnboardRequest{User: u, Clients: []string{"ws1", "ws2"}}); err != nil {
				t.Fatal(err)
			}
		}
		down = true
		_, err := Revoke(ctx, c.env, []string{"alice"})
		var pe *PartialError
		if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Host != "ws2" || pe.Failed[0].Status != StatusUnreachable {
			t.Fatalf("revoke with ws2 down: %v", err)
		}
		if _, ok := c.nodeKeys(t, "node1")["alice"]; ok {
			t.Error("node1 still accepts alice")
		}
		if _, err := os.Lstat(c.roots["ws1"].Path("home/alice/.pcmkeys/test.key")); !os.IsNotExist(err) {
			t.Error("alice's key on ws1 is still there")
		}
		if a, err := c.env.Store.GetAdmin(ctx, "alice"); err != nil || a.Active() {
			t.Fatalf("alice should stay marked revoked: %+v %v", a, err)
		}
		if _, err := c.env.Store.Get(ctx, keystore.CIB("bob")); err != nil {
			t.Fatal(err)
		}
		down = false
		st, err := Status(ctx, c.env, StatusRequest{})
		if !errors.Is(err, ErrFindings) || !hasState(st, "ws2", FileStale) {
			t.Errorf("status during an unfinished revocation: %v", err)
		}
		// A push removes her files too, but only revoke finishes her.
		if _, err := Revoke(ctx, c.env, []string{"alice"}); err != nil {
			t.Fatalf("rerun: %v", err)
		}
		if _, err := os.Lstat(ws2.Path("home/alice/.pcmkeys/test.key")); !os.IsNotExist(err) {
			t.Error("alice's key on ws2 is still there after the rerun")
		}
		if a, err := c.env.Store.GetAdmin(ctx, "alice"); err != nil || !a.RevocationFinished() {
			t.Errorf("alice's record after the rerun: %+v %v", a, err)
		}
		if _, err := c.env.Store.Get(ctx, keystore.CIB("alice")); !errors.Is(err, keystore.ErrDestroyed) {
			t.Errorf("alice's key after the rerun: %v", err)
		}
		if _, err := Status(ctx, c.env, StatusRequest{}); err != nil {
			t.Errorf("status after the rerun: %v", err)
		}
	})
}

func hasState(st *StatusReport, host string, state State) bool {
	for _, h := range st.Hosts {
		for _, f := range h.Files {
			if h.Host == host && f.State == state {
				return true
			}
		}
	}
	return false
}

// TestStatusAndPush: tampered files are found by status (exit 4's error)
// and repaired by push; files in sync are left alone.
func TestStatusAndPush(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := onboarded(t, store, "shared")
		ctx := context.Background()
		st, err := Status(ctx, c.env, StatusRequest{})
		if err != nil {
			t.Fatalf("status of a fresh cluster: %v %+v", err, st)
		}
		if len(st.Credentials) != 3 || st.Credentials[0].Overdue || st.Credentials[0].Age != "0d" || st.Credentials[2].ID != "password/hacluster" {
			t.Errorf("credentials: %+v", st.Credentials)
		}
		n1, n2, ws := c.roots["node1"], c.roots["node2"], c.roots["ws1"]
		os.Chmod(n1.Path("etc/pacemaker/authkey"), 0o644)                                                                 // wrong mode
		os.WriteFile(n2.Path("etc/pacemaker/cib-credentials"), []byte("hacluster:"+strings.Repeat("00", 32)+"\n"), 0o600) // drift
		os.Remove(ws.Path("home/bob/.pcmkeys/test.env"))                                                                  // missing
		st, err = Status(ctx, c.env, StatusRequest{})
		if !errors.Is(err, ErrFindings) || st.Findings != 3 {
			t.Fatalf("status after tampering: %v, %d findings", err, st.Findings)
		}
		for _, want := range []struct {
			host  string
			state State
		}{{"node1", FileWrongMode}, {"node2", FileDrift}, {"ws1", FileMissing}} {
			if !hasState(st, want.host, want.state) {
				t.Errorf("status does not report %s on %s", want.state, want.host)
			}
		}
		// A dry run changes nothing.
		c.env.DryRun = true
		if _, err := Push(ctx, c.env, nil); err != nil {
			t.Fatal(err)
		}
		c.env.DryRun = false
		if _, err := Status(ctx, c.env, StatusRequest{}); !errors.Is(err, ErrFindings) {
			t.Error("a dry-run push repaired something")
		}
		rep, err := Push(ctx, c.env, []string{"node1"})
		if err != nil || len(rep.Hosts) != 1 {
			t.Fatalf("push --host node1: %+v %v", rep, err)
		}
		rep, err = Push(ctx, c.env, nil)
		if err != nil {
			t.Fatal(err)
		}
		written := 0
		for _, h := range rep.Hosts {
			for _, f := range h.Files {
				if f.Action == ActionWritten {
					written++
				}
			}
		}
		if written != 2 {
			t.Errorf("push wrote %d files, want the 2 still wrong", written)
		}
		if _, err := Status(ctx, c.env, StatusRequest{}); err != nil {
			t.Errorf("status after push: %v", err)
		}
		if _, err := Push(ctx, c.env, []string{"nosuch"}); !errors.Is(err, ErrBadInput) {
			t.Errorf("push to an unknown host: %v", err)
		}
	})
}

func TestLockKeepsRunsApart(t *testing.T) {
	c := onboarded(t, "file", "shared")
	ctx := context.Background()
	lease, err := c.env.Store.Lock(ctx, "someone else", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Rotate(ctx, c.env, Request{}); !errors.Is(err, keystore.ErrLocked) || !strings.Contains(err.Error(), "someone else") {
		t.Errorf("rotate while locked: %v", err)
	}
	if _, err := Revoke(ctx, c.env, []string{"bob"}); !errors.Is(err, keystore.ErrLocked) {
		t.Errorf("revoke while locked: %v", err)
	}
	c.env.Store.Unlock(ctx, lease)
	if _, err := Rotate(ctx, c.env, Request{}); err != nil {
		t.Errorf("rotate after the lock was released: %v", err)
	}
	// --wait: a run waits for the holder to finish, and then runs.
	if lease, err = c.env.Store.Lock(ctx, "the scheduled job", time.Minute); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	c.env.Log = slog.New(onMessage{"waiting for the cluster's lock", sync.OnceFunc(func() { close(waiting) })})
	go func() { <-waiting; c.env.Store.Unlock(context.Background(), lease) }()
	c.env.LockWait = 30 * time.Second
	if _, err := Revoke(ctx, c.env, []string{"bob"}); err != nil {
		t.Errorf("revoke --wait while the scheduled job holds the lock: %v", err)
	}
	select {
	case <-waiting:
	default:
		t.Error("revoke --wait ran without waiting for the lock's holder")
	}
}

// onMessage is a log handler that calls fn on each record with message msg.
type onMessage struct {
	msg string
	fn  func()
}

func (h onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.fn()
	}
	return nil
}
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onMessage) WithGroup(string) slog.Handler      { return h }

func TestLifecycleDryRunsChangeNothing(t *testing.T) {
	c := onboarded(t, "file", "per-user")
	ctx := context.Background()
	before, store := treeState(t, c), storeState(t, c)
	c.env.DryRun = true
	rep, err := Rotate(ctx, c.env, Request{CIB: true, Authkey: true})
	if err != nil || len(rep.Credentials) != 3 || len(rep.Hosts) == 0 {
		t.Fatalf("dry-run rotate: %+v %v", rep, err)
	}
	// A dry run never shows a fingerprint of a key it will not use.
	cur := map[string]bool{}
	for _, id := range []keystore.ID{"cib/alice", "cib/bob", "authkey"} {
		cur[c.key(t, id).Version.Fingerprint] = true
	}
	shownNew := 0
	for _, h := range rep.Hosts {
		for _, f := range h.Files {
			if f.Action != ActionWrite {
				// The real run writes every file of a rotation, the env
				// file included: the plan must say so.
				t.Errorf("dry-run rotate: %s on %s %q, want %q", f.Path, h.Host, f.Action, ActionWrite)
			}
			switch {
			case f.Fingerprint == NewKeyMarker:
				shownNew++
			case f.Fingerprint != "" && !cur[f.Fingerprint]:
				t.Errorf("dry-run rotate shows %s for %s on %s: a key it will never use", f.Fingerprint, f.Path, h.Host)
			}
		}
	}
	if shownNew == 0 {
		t.Error("dry-run rotate shows no file with a new key")
	}
	if rep, err = Revoke(ctx, c.env, []string{"alice"}); err != nil || len(rep.Hosts) == 0 {
		t.Fatalf("dry-run revoke: %+v %v", rep, err)
	}
	if after := treeState(t, c); after != before {
		t.Errorf("dry runs changed files:\n%s\n---\n%s", before, after)
	}
	if after := storeState(t, c); after != store {
		t.Errorf("dry runs changed the store: %s → %s", store, after)
	}
	if a, _ := c.env.Store.GetAdmin(ctx, "alice"); !a.Active() {
		t.Error("a dry-run revoke marked alice")
	}
}

// TestImport adopts keys a cluster already has: nodes that agree are
// adopted; nodes that disagree are refused unless --force names the
// winner; a malformed file is refused with its line; the store's own
// different key is kept unless forced.
func TestImport(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newClusterIn(t, store, "shared", "")
		ctx := context.Background()
		psk, _ := keys.Generate(keys.PSK, 32)
		auth, _ := keys.Generate(keys.Authkey, 256)
		cib, _ := credfile.RenderCIBCredentials([]credfile.Entry{{Identity: "hacluster", Key: psk}, {Identity: "legacy", Key: psk}})
		for _, n := range []string{"node1", "node2"} {
			r := c.roots[n]
			os.MkdirAll(r.Path("etc/pacemaker"), 0o750)
			os.WriteFile(r.Path("etc/pacemaker/cib-credentials"), cib, 0o600)
			os.WriteFile(r.Path("etc/pacemaker/authkey"), auth, 0o600)
		}
		rep, err := Import(ctx, c.env, ImportRequest{Host: "node1"})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.key(t, keystore.CIB("hacluster")); !got.Key.Equal(psk) {
			t.Error("the shared key was not adopted")
		}
		if got := c.key(t, keystore.AuthkeyID); !got.Key.Equal(auth) {
			t.Error("the authkey was not adopted")
		}
		if !strings.Contains(strings.Join(rep.Notes, "\n"), "identity legacy") {
			t.Errorf("the unmanaged line is not named: %v", rep.Notes)
		}
		// Now node2 disagrees.
		other, _ := keys.Generate(keys.Authkey, 256)
		os.WriteFile(c.roots["node2"].Path("etc/pacemaker/authkey"), other, 0o600)
		if _, err := Import(ctx, c.env, ImportRequest{Host: "node2"}); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "disagree") {
			t.Errorf("import while nodes disagree: %v", err)
		}
		if got := c.key(t, keystore.AuthkeyID); !got.Key.Equal(auth) {
			t.Error("a refused import changed the store")
		}
		if _, err := Import(ctx, c.env, ImportRequest{Host: "node2", Force: true}); err != nil {
			t.Fatalf("import --force: %v", err)
		}
		if got := c.key(t, keystore.AuthkeyID); !got.Key.Equal(other) || got.Version.Version != 2 {
			t.Errorf("node2's authkey did not win: version %d", got.Version.Version)
		}
		// A malformed file: refused, by line.
		os.WriteFile(c.roots["node1"].Path("etc/pacemaker/cib-credentials"), []byte("hacluster:"+strings.Repeat("ab", 32)+"\r\n"), 0o600)
		os.WriteFile(c.roots["node1"].Path("etc/pacemaker/authkey"), other, 0o600)
		if _, err := Import(ctx, c.env, ImportRequest{Host: "node1", Force: true}); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "line 1: carriage return") {
			t.Errorf("import of a malformed file: %v", err)
		}
		if _, err := Import(ctx, c.env, ImportRequest{Host: "ws1"}); !errors.Is(err, ErrBadInput) {
			t.Errorf("import from a client: %v", err)
		}
	})
}

func TestDoctor(t *testing.T) {
	c := onboarded(t, "file", "shared")
	ctx := context.Background()
	if rep, err := Doctor(ctx, c.env, nil); err != nil {
		t.Fatalf("doctor on a fresh cluster: %v %+v", err, rep)
	}
	ws := c.roots["ws1"]
	os.WriteFile(ws.Path("home/bob/.pcmkeys/test.env"), []byte("export CIB_server='node1'\n"), 0o600)
	os.Chmod(ws.Path("home/alice/.pcmkeys/test.key"), 0o644)
	os.Chmod(c.roots["node2"].Path("etc/pacemaker"), 0o777)
	rep, err := Doctor(ctx, c.env, nil)
	if !errors.Is(err, ErrFindings) || rep.Problems != 4 {
		t.Fatalf("doctor after tampering: %v, %d problems", err, rep.Problems)
	}
	var all []string
	for _, h := range rep.Hosts {
		for _, ch := range h.Checks {
			if !ch.OK {
				all = append(all, h.Host+" "+ch.Name+": "+ch.Detail)
			}
		}
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{"lacks CIB_encrypted=true", "mode 0644, want 0600", "node2 /etc/pacemaker/cib-credentials: ", "writable by group or other"} {
		if !strings.Contains(joined, want) {
			t.Errorf("doctor does not say %q:\n%s", want, joined)
		}
	}
}

// TestDeadRunLockBroken: a lock left by a process of this machine that no
// longer exists is broken at once; one held by a live process, or by
// another machine, is respected.
func TestDeadRunLockBroken(t *testing.T) {
	c := onboarded(t, "file", "shared")
	ctx := context.Background()
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		holder string
		broken bool
	}{
		{fmt.Sprintf("op@%s pid %d (rotate)", host, dead.Process.Pid), true},
		{fmt.Sprintf("op@%s pid %d (rotate)", host, os.Getppid()), false},
		{fmt.Sprintf("op@elsewhere pid %d (rotate)", dead.Process.Pid), false},
	} {
		lease, err := c.env.Store.Lock(ctx, tc.holder, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Push(ctx, c.env, nil)
		if tc.broken && err != nil {
			t.Errorf("%s: %v", tc.holder, err)
		}
		if !tc.broken {
			if !errors.Is(err, keystore.ErrLocked) {
				t.Errorf("%s: the lock was not respected: %v", tc.holder, err)
			}
			c.env.Store.Unlock(ctx, lease)
		}
	}
}

// TestDestroyedCurrentVersionWayOut (issue 12): when the current version
// of the shared key was destroyed behind pcmkeys's back (a Vault
// delete_version_after, say), status and push fail naming it, and
// rotate --cib writes a new version over it, after which push converges.
func TestDestroyedCurrentVersionWayOut(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := onboarded(t, store, "shared")
		ctx := context.Background()
		cur := c.key(t, keystore.CIB("hacluster"))
		if err := c.env.Store.Destroy(ctx, keystore.CIB("hacluster"), cur.Version.Version); err != nil {
			t.Fatal(err)
		}
		if _, err := Status(ctx, c.env, StatusRequest{}); !errors.Is(err, keystore.ErrDestroyed) {
			t.Fatalf("status over a destroyed current version: %v", err)
		}
		if _, err := Rotate(ctx, c.env, Request{CIB: true}); err != nil {
			t.Fatalf("rotate --cib over a destroyed current version: %v", err)
		}
		if next := c.key(t, keystore.CIB("hacluster")); next.Version.Version != cur.Version.Version+1 {
			t.Errorf("new version %d, want %d", next.Version.Version, cur.Version.Version+1)
		}
		if _, err := Push(ctx, c.env, nil); err != nil {
			t.Errorf("push after the way out: %v", err)
		}
		if _, err := Status(ctx, c.env, StatusRequest{}); err != nil {
			t.Errorf("status after the way out: %v", err)
		}
	})
}

// TestRevokeSessionsOnImages: on nodes that are images under a root
// prefix (no daemons) the closing of live sessions runs nothing: a dry
// run says it is planned, a real run that it was skipped, on every node.
func TestRevokeSessionsOnImages(t *testing.T) {
	c := onboarded(t, "file", "shared")
	ctx := context.Background()
	for _, tc := range []struct {
		dryRun bool
		want   SessionAction
	}{{true, SessionsPlanned}, {false, SessionsSkipped}} {
		c.env.DryRun = tc.dryRun
		rep, err := Revoke(ctx, c.env, []string{"alice"})
		if err != nil {
			t.Fatal(err)
		}
		nodes := 0
		for _, h := range rep.Hosts {
			if h.Sessions == nil {
				continue
			}
			nodes++
			if h.Sessions.Action != tc.want || h.Status == StatusFailed {
				t.Errorf("dry run %v: %s sessions %+v, status %s", tc.dryRun, h.Host, *h.Sessions, h.Status)
			}
		}
		if nodes != 2 {
			t.Errorf("dry run %v: sessions reported on %d nodes, want 2", tc.dryRun, nodes)
		}
	}
}
