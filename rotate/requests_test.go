package rotate

import (
	"context"
	"testing"

	"github.com/pcmkeys/pcmkeys/keystore/vaultstore"
)

// TestVaultRequestCounts counts the Vault requests that init and onboard
// make, prints them, and holds them to the reads and writes each workflow
// needs: nothing is read twice.
func TestVaultRequestCounts(t *testing.T) {
	for _, mode := range []string{"shared", "per-user"} {
		t.Run(mode, func(t *testing.T) {
			c := newClusterIn(t, "vault", mode, "")
			vs := c.env.Store.(*vaultstore.Store)
			ctx := context.Background()
			count := func(name string, max int64, f func() error) {
				t.Helper()
				before := vs.Requests()
				if err := f(); err != nil {
					t.Fatal(err)
				}
				n := vs.Requests() - before
				t.Logf("%s %s: %d Vault requests", mode, name, n)
				if n > max {
					t.Errorf("%s made %d requests, want at most %d", name, n, max)
				}
			}
			// Every changing workflow takes and releases the cluster lock:
			// read it, write it, release it (3 requests).
			// init, shared: get authkey (miss, then history), put + metadata;
			// the same for cib/hacluster. Per-user: the authkey, and one
			// list of admins.
			initMax := map[string]int64{"shared": 3 + 8, "per-user": 3 + 5}[mode]
			count("init (empty store)", initMax, func() error { _, err := Init(ctx, c.env); return err })
			count("init (again)", 3+2, func() error { _, err := Init(ctx, c.env); return err })
			// onboard alice, shared: read her record, the shared key, write
			// her record. Per-user: her record, her key (miss, history),
			// put + metadata, her record, then the list of admins and each
			// admin's key for cib-credentials.
			onMax := map[string]int64{"shared": 3 + 3, "per-user": 3 + 8}[mode]
			count("onboard alice", onMax, func() error {
				_, err := Onboard(ctx, c.env, OnboardRequest{User: "alice", Clients: []string{"ws1"}})
				return err
			})
		})
	}
}
