package vaultstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// TestListAdminsRequests: reading who holds what for 1,000 admins — what
// status does first — costs one LIST and one read per admin, printed here.
// The store talks to Vault through a proxy that counts the requests.
func TestListAdminsRequests(t *testing.T) {
	needVault(t)
	addr, requests := srv.CountingProxy(t)
	s := mustOpen(t, Options{Address: addr})
	ctx := context.Background()
	const n = 1000
	for i := 0; i < n; i++ {
		a := keystore.Admin{User: fmt.Sprintf("admin%04d", i), Identity: "hacluster", Clients: []keystore.Client{{Host: "ws1", KeyFile: "~/k", EnvFile: "~/e"}}}
		if _, err := s.PutAdmin(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	before := requests()
	admins, err := s.ListAdmins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := requests() - before
	t.Logf("ListAdmins over %d admins: %d Vault requests (%.3f per admin)", n, got, float64(got)/n)
	if len(admins) != n || got != n+1 {
		t.Errorf("%d admins in %d requests, want %d in %d", len(admins), got, n, n+1)
	}
}
