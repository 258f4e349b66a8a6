package rotate

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// procWatcher records the argv and environment of every process on the
// machine — the lab hosts' sshd sessions, shells and coreutils included,
// as they share its /proc — until stopped.
func procWatcher() (stop func() []string) {
	seen := map[string]bool{}
	var mu sync.Mutex
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				if e.Name()[0] < '0' || e.Name()[0] > '9' {
					continue
				}
				for _, f := range []string{"cmdline", "environ"} {
					b, err := os.ReadFile("/proc/" + e.Name() + "/" + f)
					if err == nil && len(b) > 0 {
						mu.Lock()
						seen[string(b)] = true
						mu.Unlock()
					}
				}
			}
		}
	}()
	return func() []string {
		close(quit)
		<-done
		out := make([]string, 0, len(seen))
		for s := range seen {
			out = append(out, s)
		}
		return out
	}
}

// TestNoKeyInArgvOrEnvironment runs a lifecycle over SSH on the lab (init,
// onboard, rotate both kinds of key, revoke) while every process's argv
// and environment on the machine is sampled, then looks for every key the
// store ever held, in hex and base64: zero hits.
func TestNoKeyInArgvOrEnvironment(t *testing.T) {
	e, _ := labCluster(t, "file", "per-user")
	ctx := context.Background()
	stop := procWatcher()
	steps := []func() error{
		func() error { _, err := Init(ctx, e); return err },
		func() error {
			_, err := Onboard(ctx, e, OnboardRequest{User: "alice", Clients: []string{"host03"}})
			return err
		},
		func() error {
			_, err := Onboard(ctx, e, OnboardRequest{User: "bob", Clients: []string{"host03"}})
			return err
		},
		func() error { _, err := Rotate(ctx, e, Request{CIB: true, Authkey: true}); return err },
		func() error { _, err := Push(ctx, e, nil); return err },
		func() error { _, err := Revoke(ctx, e, []string{"alice"}); return err },
	}
	secrets := map[string]keys.Secret{}
	versions := map[keystore.ID]int{}
	collect := func() { // after every step, each current key: a step makes at most one version of each
		for _, id := range []keystore.ID{"authkey", "cib/alice", "cib/bob"} {
			if c, err := e.Store.Get(ctx, id); err == nil {
				secrets[c.Version.Fingerprint] = c.Key
			}
			if hist, err := e.Store.History(ctx, id); err == nil {
				versions[id] = len(hist)
			}
		}
	}
	for i, s := range steps {
		if err := s(); err != nil {
			stop()
			t.Fatalf("step %d: %v", i, err)
		}
		collect()
	}
	seen := stop()
	made := 0
	for _, n := range versions {
		made += n
	}
	if len(secrets) < 5 || len(secrets) != made {
		t.Fatalf("%d keys to look for of the %d versions the store made", len(secrets), made)
	}
	for _, k := range secrets {
		for _, form := range []string{hex.EncodeToString(k), strings.ToUpper(hex.EncodeToString(k)), base64.StdEncoding.EncodeToString(k)} {
			for _, s := range seen {
				if strings.Contains(s, form[:24]) {
					t.Fatalf("a process's argv or environment held key material: %.80q", s)
				}
			}
		}
	}
	t.Logf("%d distinct argv/environment blocks sampled, %d keys searched: 0 hits", len(seen), len(secrets))
}
