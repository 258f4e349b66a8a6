package rotate

import (
	"context"
	"fmt"
	"testing"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// countVaultRequests reopens c's Vault store the way the commands open it,
// on the address of a proxy in front of the test Vault that counts the
// requests passing through, and returns that count so far.
func countVaultRequests(t *testing.T, c *cluster) func() int64 {
	t.Helper()
	addr, requests := vaultSrv.CountingProxy(t)
	cfg := *c.env.Config
	cfg.Store.Address = addr
	st, err := OpenStore(context.Background(), &cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if requests() == 0 { // opening checks the mount: through the proxy
		t.Fatal("the store did not open through the counting proxy")
	}
	c.env.Store.Close()
	c.env.Config, c.env.Store = &cfg, st
	t.Cleanup(func() { st.Close() })
	return requests
}

// TestVaultRequestCounts counts the Vault requests that init and onboard
// make, prints them, and holds them to the reads and writes each workflow
// needs: nothing is read twice.
func TestVaultRequestCounts(t *testing.T) {
	for _, mode := range []string{"shared", "per-user"} {
		t.Run(mode, func(t *testing.T) {
			c := newClusterIn(t, "vault", mode, "")
			requests := countVaultRequests(t, c)
			ctx := context.Background()
			count := func(name string, max int64, f func() error) {
				t.Helper()
				before := requests()
				if err := f(); err != nil {
					t.Fatal(err)
				}
				n := requests() - before
				t.Logf("%s %s: %d Vault requests", mode, name, n)
				if n > max {
					t.Errorf("%s made %d requests, want at most %d", name, n, max)
				}
			}
			// Every changing workflow takes and releases the cluster lock:
			// read it, write it, release it (3 requests).
			// init, shared: get authkey (miss, then history), put + metadata;
			// the same for cib/hacluster and for hacluster's password.
			// Per-user: the authkey, and one list of admins.
			initMax := map[string]int64{"shared": 3 + 12, "per-user": 3 + 5}[mode]
			count("init (empty store)", initMax, func() error { _, err := Init(ctx, c.env); return err })
			count("init (again)", map[string]int64{"shared": 3 + 3, "per-user": 3 + 2}[mode], func() error { _, err := Init(ctx, c.env); return err })
			// onboard alice, shared: read her record, the shared key, write
			// her record. Per-user: her record, her key (miss, history),
			// put + metadata, her record, then the list of admins and each
			// admin's key for cib-credentials.
			onMax := map[string]int64{"shared": 3 + 3 + 1, "per-user": 3 + 8}[mode] // shared: + hacluster's password
			count("onboard alice", onMax, func() error {
				_, err := Onboard(ctx, c.env, OnboardRequest{User: "alice", Clients: []string{"ws1"}})
				return err
			})
			if _, err := Onboard(ctx, c.env, OnboardRequest{User: "bob", Clients: []string{"ws1"}}); err != nil {
				t.Fatal(err)
			}
			// Shared mode reads hacluster's password once more everywhere,
			// and rotate and revoke write it (read, put + metadata).
			// status: the admins (list + one read each), each key once.
			count("status (2 admins)", map[string]int64{"shared": 3 + 2 + 1, "per-user": 3 + 3}[mode], func() error { _, err := Status(ctx, c.env, StatusRequest{}); return err })
			// rotate: lock, the admins, the keys rotated (and in per-user
			// mode the others for cib-credentials), each new version's
			// put + metadata.
			count("rotate --cib", map[string]int64{"shared": 3 + 3 + 1 + 2 + 3, "per-user": 3 + 3 + 2 + 4}[mode], func() error {
				_, err := Rotate(ctx, c.env, Request{CIB: true})
				return err
			})
			// revoke alice: lock, the admins, mark her, (shared: read and
			// write the new shared key; per-user: bob's key for
			// cib-credentials, then destroy hers: read its current version,
			// and the store's destroy checks it before and after, since
			// Vault has no check-and-set for a destroy), then delete her
			// record (tombstone, metadata delete).
			count("revoke alice", map[string]int64{"shared": 3 + 3 + 1 + 3 + 2 + 3, "per-user": 3 + 3 + 1 + 1 + 1 + 3 + 2}[mode], func() error {
				_, err := Revoke(ctx, c.env, []string{"alice"})
				return err
			})
		})
	}
}

// TestVaultStatusRequestsPerAdmin: status over 1,000 per-user admins makes
// a small constant number of Vault requests per admin (printed).
func TestVaultStatusRequestsPerAdmin(t *testing.T) {
	c := newClusterIn(t, "vault", "per-user", "")
	requests := countVaultRequests(t, c)
	vs := c.env.Store
	ctx := context.Background()
	if _, err := Init(ctx, c.env); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := 0; i < n; i++ {
		u := fmt.Sprintf("admin%04d", i)
		k, _ := keys.Generate(keys.PSK, 32)
		if _, err := vs.Put(ctx, keystore.CIB(u), k, keystore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := vs.PutAdmin(ctx, keystore.Admin{User: u, Identity: u, Clients: []keystore.Client{{Host: "ws1", KeyFile: "~/k", EnvFile: "~/e"}}}); err != nil {
			t.Fatal(err)
		}
	}
	before := requests()
	st, err := Status(ctx, c.env, StatusRequest{})
	if st == nil || len(st.Credentials) != n+1 {
		t.Fatalf("status: %v", err)
	}
	got := requests() - before
	t.Logf("status over %d admins: %d Vault requests, %.2f per admin", n, got, float64(got)/n)
	if got > 2*n+3 {
		t.Errorf("%d requests for %d admins: want at most 2 per admin and 3 more", got, n)
	}
}
