package rotate

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestAdmins(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := onboarded(t, store, "per-user")
		ctx := context.Background()
		if _, err := Revoke(ctx, c.env, []string{"bob"}); err != nil {
			t.Fatal(err)
		}
		rep, err := Admins(ctx, c.env)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Admins) != 2 {
			t.Fatalf("admins: %+v", rep.Admins)
		}
		alice, bob := rep.Admins[0], rep.Admins[1]
		want := c.key(t, "cib/alice")
		if alice.User != "alice" || alice.State != AdminActive || alice.Credential != "cib/alice" ||
			alice.Version != want.Version.Version || alice.Fingerprint != want.Version.Fingerprint ||
			len(alice.Clients) != 1 || alice.Clients[0].Host != "ws1" || alice.KeyAge != "0d" {
			t.Errorf("alice: %+v", alice)
		}
		if bob.User != "bob" || bob.State != AdminRevoked || bob.Revoked == nil || bob.Version != 0 || bob.Fingerprint != "" {
			t.Errorf("bob, revoked: %+v", bob)
		}
	})
}

func TestRemoveClient(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := onboarded(t, store, "shared")
		ctx := context.Background()
		shared := c.key(t, "cib/hacluster")
		rep, err := RemoveClient(ctx, c.env, "alice", []string{"ws1"})
		if err != nil {
			t.Fatalf("remove-client: %v %+v", err, rep)
		}
		for _, f := range []string{"test.key", "test.env", "test.passwd"} {
			if _, err := os.Lstat(c.roots["ws1"].Path("home/alice/.pcmkeys/" + f)); !os.IsNotExist(err) {
				t.Errorf("alice's %s is still on ws1: %v", f, err)
			}
			if _, err := os.Lstat(c.roots["ws1"].Path("home/bob/.pcmkeys/" + f)); err != nil {
				t.Errorf("bob's %s went with alice's: %v", f, err)
			}
		}
		a, err := c.env.Store.GetAdmin(ctx, "alice")
		if err != nil || !a.Active() || len(a.Clients) != 0 {
			t.Errorf("alice's record after remove-client: %+v %v", a, err)
		}
		if now := c.key(t, "cib/hacluster"); now.Version != shared.Version {
			t.Errorf("remove-client rotated the shared key: v%d, was v%d", now.Version.Version, shared.Version.Version)
		}
		if _, err := Status(ctx, c.env, StatusRequest{}); err != nil {
			t.Errorf("status after remove-client: %v", err)
		}
		// Refusals change nothing.
		for _, tc := range []struct {
			user  string
			hosts []string
			want  string
		}{
			{"alice", []string{"ws1"}, "no files recorded on ws1"},
			{"bob", []string{"node1"}, "no files recorded on node1"},
			{"bob", nil, "name the client hosts"},
			{"carol", []string{"ws1"}, "admin carol"},
			{"no body", []string{"ws1"}, "invalid"},
		} {
			before := storeState(t, c)
			if _, err := RemoveClient(ctx, c.env, tc.user, tc.hosts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("remove-client %s %v: %v, want an error with %q", tc.user, tc.hosts, err, tc.want)
			}
			if storeState(t, c) != before {
				t.Errorf("a refused remove-client %s %v changed the store", tc.user, tc.hosts)
			}
		}
		if _, err := Revoke(ctx, c.env, []string{"bob"}); err != nil {
			t.Fatal(err)
		}
		if _, err := RemoveClient(ctx, c.env, "bob", []string{"ws1"}); !errors.Is(err, ErrBadInput) {
			t.Errorf("remove-client of a revoked admin: %v, want bad input", err)
		}
	})
}

func TestHostLimits(t *testing.T) {
	c := onboarded(t, "file", "shared")
	ctx := context.Background()
	st, err := Status(ctx, c.env, StatusRequest{Hosts: []string{"node2"}})
	if err != nil || len(st.Hosts) != 1 || st.Hosts[0].Host != "node2" || len(st.Credentials) != 3 {
		t.Errorf("status --host node2: %v %+v", err, st)
	}
	dr, err := Doctor(ctx, c.env, []string{"ws1"})
	if len(dr.Hosts) != 1 || dr.Hosts[0].Host != "ws1" {
		t.Errorf("doctor --host ws1: %v %+v", err, dr.Hosts)
	}
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"status --host nosuch", func() error { _, err := Status(ctx, c.env, StatusRequest{Hosts: []string{"nosuch"}}); return err }},
		{"doctor --host nosuch", func() error { _, err := Doctor(ctx, c.env, []string{"nosuch"}); return err }},
		{"push --host nosuch", func() error { _, err := Push(ctx, c.env, []string{"nosuch"}); return err }},
		{"rotate --host nosuch", func() error { _, err := Rotate(ctx, c.env, Request{Hosts: []string{"nosuch"}}); return err }},
		{"rotate --host node1", func() error { _, err := Rotate(ctx, c.env, Request{Hosts: []string{"node1"}}); return err }},
	} {
		if err := tc.run(); !errors.Is(err, ErrBadInput) {
			t.Errorf("%s: %v, want bad input", tc.name, err)
		}
	}
	// rotate --host ws1: every node and ws1 get the new key.
	old := c.key(t, "cib/hacluster")
	rep, err := Rotate(ctx, c.env, Request{Hosts: []string{"ws1"}})
	if err != nil || len(rep.Notes) == 0 {
		t.Fatalf("rotate --host ws1: %v %+v", err, rep)
	}
	now := c.key(t, "cib/hacluster")
	if now.Version == old.Version || !c.clientKey(t, "alice").Equal(now.Key) || !c.nodeKeys(t, "node1")["hacluster"].Equal(now.Key) {
		t.Errorf("rotate --host ws1 did not put the new key on node1 and ws1")
	}
}
