package vaultstore

import (
	"context"
	"errors"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// roleStore returns a store whose token holds only the policy of role (not
// even Vault's default policy), over a prefix seeded by an admin.
func roleStore(t *testing.T, prefix string, req policies.VaultPolicyRequest) *Store {
	t.Helper()
	root := srv.Client(t)
	req.Mount, req.Prefix = mount, prefix
	hcl, err := policies.VaultPolicy(req)
	if err != nil {
		t.Fatal(err)
	}
	name := "pcmkeys-" + string(req.Role) + "-" + prefix[len(prefix)-6:]
	if err := root.Sys().PutPolicy(name, hcl); err != nil {
		t.Fatalf("vault refused the %s policy: %v\n%s", req.Role, err, hcl)
	}
	tok, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{name}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	return mustOpen(t, Options{Prefix: prefix, Auth: Auth{Token: tok.Auth.ClientToken}})
}

// seed fills a prefix as an admin would: shared and per-user keys, an
// authkey, two admins.
func seed(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for _, id := range []keystore.ID{keystore.CIB("hacluster"), keystore.CIB("alice"), keystore.CIB("bob"), keystore.AuthkeyID} {
		_, def, _ := keys.Bounds(id.Kind())
		k, _ := keys.Generate(id.Kind(), def)
		if _, err := s.Put(ctx, id, k, keystore.PutOptions{CreatedBy: "seed"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := s.PutAdmin(ctx, keystore.Admin{User: u, Identity: u}); err != nil {
			t.Fatal(err)
		}
	}
}

type op struct {
	name string
	do   func(ctx context.Context, s *Store) error
}

func newKey(k keys.Kind) keys.Secret {
	_, def, _ := keys.Bounds(k)
	s, _ := keys.Generate(k, def)
	return s
}

var (
	opGetCIB     = op{"read cib/alice", func(ctx context.Context, s *Store) error { _, err := s.Get(ctx, keystore.CIB("alice")); return err }}
	opGetBob     = op{"read cib/bob", func(ctx context.Context, s *Store) error { _, err := s.Get(ctx, keystore.CIB("bob")); return err }}
	opGetAuthkey = op{"read authkey", func(ctx context.Context, s *Store) error { _, err := s.Get(ctx, keystore.AuthkeyID); return err }}
	opRotateCIB  = op{"rotate cib/alice", func(ctx context.Context, s *Store) error {
		_, err := s.Put(ctx, keystore.CIB("alice"), newKey(keys.PSK), keystore.PutOptions{CAS: 1})
		return err
	}}
	opRotateAuth = op{"rotate authkey", func(ctx context.Context, s *Store) error {
		_, err := s.Put(ctx, keystore.AuthkeyID, newKey(keys.Authkey), keystore.PutOptions{CAS: 1})
		return err
	}}
	opNewIdentity = op{"create cib/carol", func(ctx context.Context, s *Store) error {
		_, err := s.Put(ctx, keystore.CIB("carol"), newKey(keys.PSK), keystore.PutOptions{})
		return err
	}}
	// The abuses of issue 12: metadata that makes the next version destroy
	// itself, or turns check-and-set off.
	opSelfDestruct = op{"set delete_version_after on cib/alice", func(ctx context.Context, s *Store) error {
		p := s.path("cib/alice")
		d := 2 * time.Second
		return s.translate(s.kv.PatchMetadata(ctx, p, vault.KVMetadataPatchInput{DeleteVersionAfter: &d}), "write metadata of", "metadata/"+p, "patch")
	}}
	opNoCAS = op{"turn cas_required off on cib/alice", func(ctx context.Context, s *Store) error {
		p := s.path("cib/alice")
		f := false
		return s.translate(s.kv.PatchMetadata(ctx, p, vault.KVMetadataPatchInput{CASRequired: &f}), "write metadata of", "metadata/"+p, "patch")
	}}
	opHistory    = op{"history cib/alice", func(ctx context.Context, s *Store) error { _, err := s.History(ctx, keystore.CIB("alice")); return err }}
	opList       = op{"list credentials", func(ctx context.Context, s *Store) error { _, err := s.list(ctx, "cib"); return err }}
	opListAdmins = op{"list admins", func(ctx context.Context, s *Store) error { _, err := s.ListAdmins(ctx); return err }}
	opGetAdmin   = op{"read admin alice", func(ctx context.Context, s *Store) error { _, err := s.GetAdmin(ctx, "alice"); return err }}
	opGetBobRec  = op{"read admin bob", func(ctx context.Context, s *Store) error { _, err := s.GetAdmin(ctx, "bob"); return err }}
	opPutAdmin   = op{"add admin carol", func(ctx context.Context, s *Store) error {
		_, err := s.PutAdmin(ctx, keystore.Admin{User: "carol", Identity: "carol"})
		return err
	}}
	opLock = op{"take and release the lock", func(ctx context.Context, s *Store) error {
		l, err := s.Lock(ctx, "test", time.Minute)
		if err != nil {
			return err
		}
		return s.Unlock(ctx, l)
	}}
	opDestroy = op{"destroy cib/bob", func(ctx context.Context, s *Store) error {
		h, err := s.History(ctx, keystore.CIB("bob"))
		if err != nil {
			return err
		}
		return s.Destroy(ctx, keystore.CIB("bob"), h[len(h)-1].Version)
	}}
	opDeleteAdmin = op{"delete admin bob", func(ctx context.Context, s *Store) error {
		a, err := s.GetAdmin(ctx, "bob")
		if err != nil {
			return err
		}
		return s.DeleteAdmin(ctx, "bob", a.Revision)
	}}
)

// TestVaultPolicies: a token holding only a role's policy can do that
// role's job and is denied everything outside it. Allowed operations run
// before denied ones that would change what they read.
func TestVaultPolicies(t *testing.T) {
	needVault(t)
	cases := []struct {
		req     policies.VaultPolicyRequest
		allowed []op
		denied  []op
	}{
		{policies.VaultPolicyRequest{Role: policies.VaultAdmin},
			[]op{opGetCIB, opGetAuthkey, opRotateCIB, opRotateAuth, opNewIdentity, opHistory, opList, opListAdmins, opGetAdmin, opPutAdmin, opLock, opDestroy, opDeleteAdmin},
			nil},
		{policies.VaultPolicyRequest{Role: policies.VaultRotator},
			[]op{opGetCIB, opGetAuthkey, opRotateCIB, opRotateAuth, opHistory, opList, opListAdmins, opGetAdmin, opLock},
			[]op{opPutAdmin, opDestroy, opDeleteAdmin, opNewIdentity, opSelfDestruct, opNoCAS}},
		{policies.VaultPolicyRequest{Role: policies.VaultAuditor},
			[]op{opHistory, opList, opListAdmins, opGetAdmin},
			[]op{opGetCIB, opGetAuthkey, opRotateCIB, opRotateAuth, opNewIdentity, opPutAdmin, opLock, opDestroy, opDeleteAdmin, opSelfDestruct}},
		{policies.VaultPolicyRequest{Role: policies.VaultSelf, User: "alice", Identity: "alice"},
			[]op{opGetCIB, opGetAdmin},
			[]op{opGetBob, opGetAuthkey, opGetBobRec, opRotateCIB, opHistory, opList, opListAdmins, opPutAdmin, opLock, opDestroy}},
	}
	for _, tc := range cases {
		t.Run(string(tc.req.Role), func(t *testing.T) {
			prefix := randomPrefix()
			seed(t, mustOpen(t, Options{Prefix: prefix}))
			s := roleStore(t, prefix, tc.req)
			ctx := context.Background()
			for _, o := range tc.allowed {
				if err := o.do(ctx, s); err != nil {
					t.Errorf("%s may %s, but: %v", tc.req.Role, o.name, err)
				}
			}
			for _, o := range tc.denied {
				if err := o.do(ctx, s); !errors.Is(err, ErrPermission) {
					t.Errorf("%s must not %s, got: %v", tc.req.Role, o.name, err)
				}
			}
			// Nothing outside the prefix, for any role.
			other := randomPrefix()
			seed(t, mustOpen(t, Options{Prefix: other}))
			outside := &Store{client: s.client, kv: s.kv, mount: s.mount, prefix: other, now: s.now, stopRen: func() {}}
			for _, o := range []op{opGetCIB, opGetAdmin, opRotateCIB} {
				if err := o.do(ctx, outside); !errors.Is(err, ErrPermission) {
					t.Errorf("%s outside its prefix may %s: %v", tc.req.Role, o.name, err)
				}
			}
		})
	}
}
