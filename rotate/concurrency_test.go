package rotate

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// TestConcurrentOperators: two operators (two Envs, as two machines would
// have) rotate and revoke at the same moment, many times over. Each run
// either completes or is refused with ErrLocked; no update is lost (the
// store's version counts the rotations that completed) and no node ends
// up holding anything but the store's current key.
func TestConcurrentOperators(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := onboarded(t, store, "per-user")
		ctx := context.Background()
		// A second operator with an Env and a store connection of their own.
		st, err := OpenStore(ctx, c.env.Config, false)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		other := &Env{Config: c.env.Config, Store: st, Operator: "second", Parallel: 4}
		envs := []*Env{c.env, other}
		start := c.key(t, keystore.CIB("bob")).Version.Version
		completed, locked := 0, 0
		for round := 0; round < 10; round++ {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, e := range envs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = Rotate(ctx, e, Request{Users: []string{"bob"}})
				}()
			}
			wg.Wait()
			for _, err := range errs {
				switch {
				case err == nil:
					completed++
				case errors.Is(err, keystore.ErrLocked):
					locked++
				default:
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
		cur := c.key(t, keystore.CIB("bob"))
		if cur.Version.Version != start+completed {
			t.Errorf("%d rotations completed but the version moved from %d to %d", completed, start, cur.Version.Version)
		}
		for _, n := range []string{"node1", "node2"} {
			if !c.nodeKeys(t, n)["bob"].Equal(cur.Key) {
				t.Errorf("%s does not hold bob's current key", n)
			}
		}
		if !c.clientKey(t, "bob").Equal(cur.Key) {
			t.Error("bob's client file does not hold his current key")
		}
		t.Logf("%s: 20 racing rotations: %d completed, %d refused by the lock", store, completed, locked)
		// A revoke racing a rotation: the end state is consistent too.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() { defer wg.Done(); _, errs[0] = Revoke(ctx, envs[0], []string{"alice"}) }()
		go func() { defer wg.Done(); _, errs[1] = Rotate(ctx, envs[1], Request{CIB: true}) }()
		wg.Wait()
		for _, err := range errs {
			if err != nil && !errors.Is(err, keystore.ErrLocked) {
				t.Fatal(err)
			}
		}
		if errs[0] != nil { // the revoke lost the race: run it again
			if _, err := Revoke(ctx, envs[0], []string{"alice"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := c.nodeKeys(t, "node1")["alice"]; ok {
			t.Error("alice is still on node1")
		}
		if _, err := Status(ctx, c.env, StatusRequest{}); err != nil {
			t.Errorf("status after the races: %v", err)
		}
	})
}
