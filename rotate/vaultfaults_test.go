package rotate

import (
	"context"
	"errors"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/internal/vaultlab"
	"github.com/pcmkeys/pcmkeys/keystore/vaultstore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// vaultCluster is a local cluster on a Vault of its own (so the test may
// seal it), with alice onboarded, returning the server too.
func vaultCluster(t *testing.T) (*cluster, *vaultlab.Server) {
	t.Helper()
	srv := vaultlab.Start(t)
	m := srv.MountKV2(t)
	c := newCluster(t, "shared", "")
	cfg := *c.env.Config
	cfg.Store = config.Store{Type: "vault", Address: srv.Addr, Mount: m, Prefix: "pcmkeys/f"}
	st, err := vaultstore.Open(context.Background(), vaultstore.Options{Address: srv.Addr, Mount: m, Prefix: "pcmkeys/f", Auth: vaultstore.Auth{Token: srv.RootToken}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c.env = &Env{Config: &cfg, Store: st, Operator: "tester", Parallel: 4}
	c.store = ""
	ctx := context.Background()
	if _, err := Init(ctx, c.env); err != nil {
		t.Fatal(err)
	}
	if _, err := Onboard(ctx, c.env, OnboardRequest{User: "alice", Clients: []string{"ws1"}}); err != nil {
		t.Fatal(err)
	}
	return c, srv
}

// useToken reopens c's store, as the commands open it, logged in with token
// instead of the root token the cluster was set up with.
func useToken(t *testing.T, c *cluster, srv *vaultlab.Server, token string) {
	t.Helper()
	cfg := c.env.Config.Store
	st, err := vaultstore.Open(context.Background(), vaultstore.Options{Address: srv.Addr, Mount: cfg.Mount, Prefix: cfg.Prefix, Auth: vaultstore.Auth{Token: token}})
	if err != nil {
		t.Fatal(err)
	}
	c.env.Store.Close()
	c.env.Store = st
	t.Cleanup(func() { st.Close() })
}

// TestVaultFaultsDuringRotation: Vault sealed, or the token revoked, after
// every node has staged the new key and before the store is written: the
// rotation fails with a clear error, every staged file is removed, and no
// host has changed.
func TestVaultFaultsDuringRotation(t *testing.T) {
	cases := []struct {
		name  string
		fault func(t *testing.T, srv *vaultlab.Server, token string)
		want  error
		msg   string
	}{
		{"sealed", func(t *testing.T, srv *vaultlab.Server, _ string) {
			if err := srv.Client(t).Sys().Seal(); err != nil {
				t.Fatal(err)
			}
		}, vaultstore.ErrSealed, "unseal"},
		{"token revoked", func(t *testing.T, srv *vaultlab.Server, token string) {
			if err := srv.Client(t).Auth().Token().RevokeTree(token); err != nil {
				t.Fatal(err)
			}
		}, vaultstore.ErrAuth, "log in again"},
		{"token expired", func(t *testing.T, srv *vaultlab.Server, token string) {
			srv.AwaitTokenExpiry(t, token) // the run's token lives 2 s
		}, vaultstore.ErrAuth, "expired"},
		{"vault stopped", func(t *testing.T, srv *vaultlab.Server, _ string) { srv.Stop() }, vaultstore.ErrUnreachable, "cannot reach vault"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, srv := vaultCluster(t)
			// A token of its own, which the test may revoke.
			req := &vault.TokenCreateRequest{Policies: []string{"root"}}
			if tc.name == "token expired" {
				req.TTL, req.Renewable = "2s", new(bool)
			}
			tok, err := srv.Client(t).Auth().Token().Create(req)
			if err != nil {
				t.Fatal(err)
			}
			useToken(t, c, srv, tok.Auth.ClientToken)
			before := treeState(t, c)
			files := map[string]string{}
			for _, n := range []string{"node1", "node2"} {
				files[n] = string(c.read(t, n, "etc/pacemaker/cib-credentials"))
			}
			staged := 0
			c.env.Progress = func(done, total int, r HostResult) {
				staged++
				if staged == 2 && len(r.Files) > 0 && r.Files[0].Action == ActionStaged {
					tc.fault(t, srv, tok.Auth.ClientToken)
				}
			}
			_, err = Rotate(context.Background(), c.env, Request{CIB: true})
			if !errors.Is(err, tc.want) || !strings.Contains(strings.ToLower(err.Error()), tc.msg) {
				t.Fatalf("rotate: %v, want %v saying %q", err, tc.want, tc.msg)
			}
			if after := treeState(t, c); after != before {
				t.Errorf("a host changed although the store did not:\n%s\n---\n%s", before, after)
			}
			for n, f := range files {
				if string(c.read(t, n, "etc/pacemaker/cib-credentials")) != f {
					t.Errorf("%s's cib-credentials changed", n)
				}
			}
		})
	}
}

// TestVaultPermissionDenied: an operator whose token holds only the auditor
// policy runs a rotation: it fails at once, naming the path and the
// capability, and no host changes.
func TestVaultPermissionDenied(t *testing.T) {
	c, srv := vaultCluster(t)
	cfg := c.env.Config
	hcl, err := policies.VaultPolicy(policies.VaultPolicyRequest{Role: policies.VaultAuditor, Mount: cfg.Store.Mount, Prefix: cfg.Store.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	root := srv.Client(t)
	if err := root.Sys().PutPolicy("auditor", hcl); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"auditor"}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	useToken(t, c, srv, tok.Auth.ClientToken)
	before := treeState(t, c)
	_, err = Rotate(context.Background(), c.env, Request{CIB: true})
	if !errors.Is(err, vaultstore.ErrPermission) || !strings.Contains(err.Error(), "capability") {
		t.Fatalf("rotate as an auditor: %v", err)
	}
	if after := treeState(t, c); after != before {
		t.Error("a host changed")
	}
}
