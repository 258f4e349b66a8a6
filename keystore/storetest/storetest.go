// Package storetest is the contract every keystore.Store must meet. The
// file store's and the Vault store's tests both call [Run].
package storetest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// Run runs the contract against stores made by open; each call of open
// must return a new, empty store.
func Run(t *testing.T, open func(t *testing.T) keystore.Store) {
	t.Run("Versions", func(t *testing.T) { testVersions(t, open(t)) })
	t.Run("CheckAndSet", func(t *testing.T) { testCheckAndSet(t, open(t)) })
	t.Run("Destroy", func(t *testing.T) { testDestroy(t, open(t)) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(t, open(t)) })
	t.Run("ConcurrentPutsOneWinner", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("Admins", func(t *testing.T) { testAdmins(t, open(t)) })
	t.Run("Lock", func(t *testing.T) { testLock(t, open(t)) })
}

func testLock(t *testing.T, s keystore.Store) {
	ctx := context.Background()
	a, err := s.Lock(ctx, "alice@ws1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(ctx, "bob@ws2", time.Minute); !errors.Is(err, keystore.ErrLocked) || !strings.Contains(err.Error(), "alice@ws1") {
		t.Errorf("second lock: %v", err)
	}
	if err := s.Unlock(ctx, a); err != nil {
		t.Fatal(err)
	}
	b, err := s.Lock(ctx, "bob@ws2", 150*time.Millisecond)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	// Renewed, the lease outlives its first ttl.
	time.Sleep(100 * time.Millisecond)
	if b, err = s.Renew(ctx, b, 300*time.Millisecond); err != nil {
		t.Fatalf("renew: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := s.Lock(ctx, "carol", time.Minute); !errors.Is(err, keystore.ErrLocked) {
		t.Errorf("a renewed lock was taken: %v", err)
	}
	// A crashed run: bob never unlocks; after the ttl carol takes over,
	// and bob's late release changes nothing.
	time.Sleep(350 * time.Millisecond)
	c, err := s.Lock(ctx, "carol", time.Minute)
	if err != nil {
		t.Fatalf("lock after expiry: %v", err)
	}
	if err := s.Unlock(ctx, b); !errors.Is(err, keystore.ErrConflict) {
		t.Errorf("release of a taken-over lock: %v", err)
	}
	if _, err := s.Renew(ctx, b, time.Minute); !errors.Is(err, keystore.ErrConflict) {
		t.Errorf("renewal of a taken-over lock: %v", err)
	}
	if _, err := s.Lock(ctx, "dave", time.Minute); !errors.Is(err, keystore.ErrLocked) {
		t.Errorf("carol's lock did not hold: %v", err)
	}
	if err := s.Unlock(ctx, c); err != nil {
		t.Fatal(err)
	}
	// A dead holder's lock can be broken, by name, and only while it
	// still holds it.
	d, err := s.Lock(ctx, "dead run", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Lock(ctx, "next run", time.Minute)
	var le *keystore.LockedError
	if !errors.As(err, &le) || le.Holder != "dead run" || le.Expires.IsZero() {
		t.Fatalf("locked error: %v", err)
	}
	if err := s.BreakLock(ctx, "someone else"); !errors.Is(err, keystore.ErrConflict) {
		t.Errorf("break a lock someone else holds: %v", err)
	}
	if err := s.BreakLock(ctx, "dead run"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(ctx, "next run", time.Minute); err != nil {
		t.Errorf("lock after break: %v", err)
	}
	if err := s.Unlock(ctx, d); !errors.Is(err, keystore.ErrConflict) {
		t.Errorf("the dead run's lease still works: %v", err)
	}
}

func gen(t *testing.T, k keys.Kind) keys.Secret {
	t.Helper()
	_, def, _ := keys.Bounds(k)
	s, err := keys.Generate(k, def)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testVersions(t *testing.T, s keystore.Store) {
	ctx := context.Background()
	id := keystore.CIB("hacluster")
	if _, err := s.Get(ctx, id); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get of a new credential: %v, want ErrNotFound", err)
	}
	k1, k2 := gen(t, keys.PSK), gen(t, keys.PSK)
	v1, err := s.Put(ctx, id, k1, keystore.PutOptions{CAS: 0, CreatedBy: "alice", Holders: []string{"alice", "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v1.Fingerprint != k1.Fingerprint() || v1.CreatedBy != "alice" || v1.Created.IsZero() || v1.Holders != "alice,bob" {
		t.Errorf("first version = %+v", v1)
	}
	if h, err := s.History(ctx, id); err != nil || h[0].Holders != "alice,bob" {
		t.Errorf("holders in the history: %+v %v", h, err)
	}
	if _, err := s.Put(ctx, id, k2, keystore.PutOptions{CAS: 1}); err != nil {
		t.Fatal(err)
	}
	cur, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Version.Version != 2 || !bytes.Equal(cur.Key, k2) {
		t.Errorf("current = version %d, key matches: %v", cur.Version.Version, bytes.Equal(cur.Key, k2))
	}
	hist, err := s.History(ctx, id)
	if err != nil || len(hist) != 2 || hist[0].Version != 1 || hist[1].Version != 2 || hist[1].Fingerprint != k2.Fingerprint() {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	auth := gen(t, keys.Authkey)
	if _, err := s.Put(ctx, keystore.AuthkeyID, auth, keystore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, keystore.AuthkeyID)
	if err != nil || !bytes.Equal(got.Key, auth) {
		t.Fatalf("authkey round trip: %v", err)
	}
}

func testCheckAndSet(t *testing.T, s keystore.Store) {
	ctx := context.Background()
	id := keystore.CIB("alice")
	k1 := gen(t, keys.PSK)
	if _, err := s.Put(ctx, id, k1, keystore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, cas := range []int{0, 2, 7} {
		if _, err := s.Put(ctx, id, gen(t, keys.PSK), keystore.PutOptions{CAS: cas}); !errors.Is(err, keystore.ErrConflict) {
			t.Errorf("Put with stale cas %d: %v, want ErrConflict", cas, err)
		}
	}
	cur, err := s.Get(ctx, id)
	if err != nil || cur.Version.Version != 1 || !bytes.Equal(cur.Key, k1) {
		t.Errorf("a refused Put changed the credential: version %d, %v", cur.Version.Version, err)
	}
}

func testDestroy(t *testing.T, s keystore.Store) {
	ctx := context.Background()
	id := keystore.CIB("bob")
	for cas := 0; cas < 2; cas++ {
		if _, err := s.Put(ctx, id, gen(t, keys.PSK), keystore.PutOptions{CAS: cas}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Destroy(ctx, id, 1); !errors.Is(err, keystore.ErrConflict) {
		t.Errorf("Destroy with stale cas: %v", err)
	}
	if err := s.Destroy(ctx, id, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, id); !errors.Is(err, keystore.ErrDestroyed) {
		t.Errorf("Get after destroy: %v", err)
	}
	hist, err := s.History(ctx, id)
	if err != nil || len(hist) != 2 || !hist[0].Destroyed || !hist[1].Destroyed || hist[1].Fingerprint == "" {
		t.Errorf("history after destroy (kept for the audit) = %+v, %v", hist, err)
	}
	// The identity can be given a key again, as version 3.
	v, err := s.Put(ctx, id, gen(t, keys.PSK), keystore.PutOptions{CAS: 2})
	if err != nil || v.Version != 3 {
		t.Errorf("Put after destroy: %+v %v", v, err)
	}
}

func testBadInput(t *testing.T, s keystore.Store) {
	ctx := context.Background()
	for _, id := range []keystore.ID{"", "cib/", "cib/a:b", "cib/a b", "cib/#x", "cib/a/b", "cib/..", "other", "cib/a\nb"} {
		if _, err := s.Put(ctx, id, gen(t, keys.PSK), keystore.PutOptions{}); err == nil {
			t.Errorf("Put(%q) succeeded", id)
		}
		if _, err := s.Get(ctx, id); err == nil || errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want a validation error", id, err)
		}
	}
	if _, err := s.Put(ctx, keystore.CIB("x"), keys.Secret(make([]byte, 8)), keystore.PutOptions{}); !errors.Is(err, keys.ErrSize) {
		t.Errorf("Put of an 8-byte PSK: %v", err)
	}
	if _, err := s.Put(ctx, keystore.AuthkeyID, gen(t, keys.PSK)[:16], keystore.PutOptions{}); !errors.Is(err, keys.ErrSize) {
		t.Errorf("Put of a 16-byte authkey: %v", err)
	}
	if _, err := s.PutAdmin(ctx, keystore.Admin{User: "a:b", Identity: "a:b"}); err == nil {
		t.Error("PutAdmin with a bad user name succeeded")
	}
}

func testConcurrent(t *testing.T, s keystore.Store) {
	ctx := context.Background()
	id := keystore.AuthkeyID
	if _, err := s.Put(ctx, id, gen(t, keys.Authkey), keystore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
		errs    []error
	)
	for i := 0; i < n; i++ {
		key := gen(t, keys.Authkey)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Put(ctx, id, key, keystore.PutOptions{CAS: 1})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				winners = append(winners, key.Fingerprint())
			} else if !errors.Is(err, keystore.ErrConflict) {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 || len(winners) != 1 {
		t.Fatalf("%d winners of %d racing writes, other errors: %v", len(winners), n, errs)
	}
	cur, err := s.Get(ctx, id)
	if err != nil || cur.Version.Version != 2 || cur.Version.Fingerprint != winners[0] {
		t.Errorf("after the race: version %d %s, winner %s, %v", cur.Version.Version, cur.Version.Fingerprint, winners[0], err)
	}
}

func testAdmins(t *testing.T, s keystore.Store) {
	ctx := context.Background()
	if _, err := s.GetAdmin(ctx, "alice"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("GetAdmin of a new admin: %v", err)
	}
	a := keystore.Admin{User: "alice", Identity: "hacluster", Clients: []keystore.Client{{Host: "ws1", KeyFile: "~/.pcmkeys/c.key", EnvFile: "~/.pcmkeys/c.env"}}}
	a, err := s.PutAdmin(ctx, a)
	if err != nil || a.Revision != 1 {
		t.Fatalf("PutAdmin = rev %d, %v", a.Revision, err)
	}
	stale := a
	stale.Revision = 0
	if _, err := s.PutAdmin(ctx, stale); !errors.Is(err, keystore.ErrConflict) {
		t.Errorf("PutAdmin over an existing record with revision 0: %v", err)
	}
	a.Clients = append(a.Clients, keystore.Client{Host: "ws2", KeyFile: "/srv/k", EnvFile: "/srv/e"})
	if a, err = s.PutAdmin(ctx, a); err != nil || a.Revision != 2 {
		t.Fatalf("update: rev %d, %v", a.Revision, err)
	}
	if _, err := s.PutAdmin(ctx, keystore.Admin{User: "bob", Identity: "hacluster"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAdmin(ctx, "alice")
	if err != nil || got.Revision != 2 || len(got.Clients) != 2 || got.Clients[1].Host != "ws2" {
		t.Errorf("GetAdmin = %+v, %v", got, err)
	}
	all, err := s.ListAdmins(ctx)
	if err != nil || len(all) != 2 || all[0].User != "alice" || all[1].User != "bob" {
		t.Errorf("ListAdmins = %+v, %v", all, err)
	}
	if err := s.DeleteAdmin(ctx, "alice", 1); !errors.Is(err, keystore.ErrConflict) {
		t.Errorf("DeleteAdmin with stale revision: %v", err)
	}
	if err := s.DeleteAdmin(ctx, "alice", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAdmin(ctx, "alice"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("GetAdmin after delete: %v", err)
	}
}
