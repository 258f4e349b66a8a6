package vaultstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/pcmkeys/pcmkeys/internal/vaultlab"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// writeSecretFile writes a login secret 0600 into a temp dir.
func writeSecretFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fullPolicy lets a token do everything under the test mount.
func fullPolicy(t *testing.T, root *vault.Client) string {
	t.Helper()
	if err := root.Sys().PutPolicy("kvall", `path "`+mount+`/*" { capabilities = ["create","read","update","patch","delete","list"] }`); err != nil {
		t.Fatal(err)
	}
	return "kvall"
}

func TestAppRoleLogin(t *testing.T) {
	needVault(t)
	root := srv.Client(t)
	pol := fullPolicy(t, root)
	if err := root.Sys().EnableAuthWithOptions("approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil && !strings.Contains(err.Error(), "path is already in use") {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/approle/role/pcmkeys", map[string]any{"token_policies": pol, "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().Read("auth/approle/role/pcmkeys/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().Write("auth/approle/role/pcmkeys/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	secretFile := writeSecretFile(t, "secret-id", sid.Data["secret_id"].(string))
	s := mustOpen(t, Options{Auth: Auth{Method: AuthAppRole, RoleID: rid.Data["role_id"].(string), SecretIDFile: secretFile}})
	k, _ := keys.Generate(keys.PSK, 32)
	if _, err := s.Put(context.Background(), keystore.CIB("hacluster"), k, keystore.PutOptions{}); err != nil {
		t.Fatalf("write after approle login: %v", err)
	}
	bad := writeSecretFile(t, "bad", "not-the-secret-id")
	_, err = open(t, Options{Auth: Auth{Method: AuthAppRole, RoleID: rid.Data["role_id"].(string), SecretIDFile: bad}})
	if !errors.Is(err, ErrAuth) {
		t.Errorf("approle login with a wrong secret id: %v", err)
	}
	if strings.Contains(err.Error(), "not-the-secret-id") {
		t.Error("the error repeats the secret id")
	}
}

// TestUserpassLoginAndRenewal logs in with a token that lives 3 seconds
// (renewable up to a minute), waits for Vault to report the token renewed
// and for the login's own expiry to pass, and uses the store: it must
// still write.
func TestUserpassLoginAndRenewal(t *testing.T) {
	needVault(t)
	root := srv.Client(t)
	pol := fullPolicy(t, root)
	if err := root.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil && !strings.Contains(err.Error(), "path is already in use") {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/alice", map[string]any{
		"password": "correct horse", "token_policies": pol, "token_ttl": "3s", "token_max_ttl": "60s",
	}); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, Options{Auth: Auth{Method: AuthUserpass, Username: "alice", PasswordFile: writeSecretFile(t, "pw", "correct horse")}})
	login := tokenExpiry(t, root, s.client.Token())
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for tokenExpiry(t, root, s.client.Token()).Equal(login) {
		if time.Now().After(login) {
			t.Fatal("the login's token expired: the store did not renew it")
		}
		<-tick.C
	}
	// Renewed; nothing signals that a moment has passed, so wait until
	// the login's own expiry is behind us.
	time.Sleep(time.Until(login) + 500*time.Millisecond)
	k, _ := keys.Generate(keys.PSK, 32)
	if _, err := s.Put(context.Background(), keystore.CIB("alice"), k, keystore.PutOptions{}); err != nil {
		t.Fatalf("write after the login's 3s token would have expired: %v", err)
	}
	// A token that expires is reported as such, not as a missing capability.
	short, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{pol}, TTL: "2s", Renewable: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	exp := mustOpen(t, Options{Auth: Auth{Token: short.Auth.ClientToken}})
	srv.AwaitTokenExpiry(t, short.Auth.ClientToken)
	if _, err := exp.Get(context.Background(), keystore.CIB("alice")); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("read with an expired token: %v", err)
	}
	_, err = open(t, Options{Auth: Auth{Method: AuthUserpass, Username: "alice", PasswordFile: writeSecretFile(t, "pw", "wrong")}})
	if !errors.Is(err, ErrAuth) {
		t.Errorf("wrong password: %v", err)
	}
}

// tokenExpiry asks Vault when token expires.
func tokenExpiry(t *testing.T, root *vault.Client, token string) time.Time {
	t.Helper()
	sec, err := root.Auth().Token().Lookup(token)
	if err != nil {
		t.Fatalf("look up the store's token: %v", err)
	}
	s, _ := sec.Data["expire_time"].(string)
	exp, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("the token's expire_time %q: %v", s, err)
	}
	return exp
}

// TestSealed runs against a Vault of its own, which it seals.
func TestSealed(t *testing.T) {
	needVault(t)
	own := vaultlab.Start(t)
	root := own.Client(t)
	m := own.MountKV2(t)
	s, err := Open(context.Background(), Options{Address: own.Addr, Mount: m, Prefix: "p", Auth: Auth{Token: own.RootToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(context.Background(), keystore.AuthkeyID)
	if !errors.Is(err, ErrSealed) || !strings.Contains(err.Error(), "vault operator unseal") {
		t.Errorf("read from a sealed vault: %v", err)
	}
	_, err = Open(context.Background(), Options{Address: own.Addr, Mount: m, Prefix: "p", Auth: Auth{Token: own.RootToken}})
	if !errors.Is(err, ErrSealed) {
		t.Errorf("open a sealed vault: %v", err)
	}
}
