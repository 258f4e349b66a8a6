package vaultstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/pcmkeys/pcmkeys/internal/vaultlab"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/storetest"
)

// srv is the package's Vault, shared by its tests; mount is a KV v2 mount
// on it. Each test that needs an empty store takes a prefix of its own.
var (
	srv   *vaultlab.Server
	mount string
)

func TestMain(m *testing.M) { vaultlab.Main(m, &srv) }

func needVault(t *testing.T) {
	t.Helper()
	if srv == nil {
		t.Skip(vaultlab.SkipReason())
	}
	if mount == "" {
		mount = srv.MountKV2(t)
	}
}

func randomPrefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "pcmkeys/test-" + hex.EncodeToString(b)
}

func open(t *testing.T, opts Options) (*Store, error) {
	t.Helper()
	if opts.Address == "" {
		opts.Address = srv.Addr
	}
	if opts.Mount == "" {
		opts.Mount = mount
	}
	if opts.Prefix == "" {
		opts.Prefix = randomPrefix()
	}
	if opts.Auth.Method == "" && opts.Auth.Token == "" {
		opts.Auth.Token = srv.RootToken
	}
	s, err := Open(context.Background(), opts)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

func mustOpen(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := open(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	needVault(t)
	storetest.Run(t, func(t *testing.T) keystore.Store { return mustOpen(t, Options{}) })
}

// TestMetadataHoldsNoKey reads everything Vault keeps besides the data —
// custom metadata and version metadata — and looks for the key in every
// form.
func TestMetadataHoldsNoKey(t *testing.T) {
	needVault(t)
	s := mustOpen(t, Options{})
	ctx := context.Background()
	psk, _ := keys.Generate(keys.PSK, 32)
	auth, _ := keys.Generate(keys.Authkey, 4096)
	if _, err := s.Put(ctx, keystore.CIB("alice"), psk, keystore.PutOptions{CreatedBy: "op"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, keystore.AuthkeyID, auth, keystore.PutOptions{CreatedBy: "op"}); err != nil {
		t.Fatal(err)
	}
	for id, k := range map[keystore.ID]keys.Secret{keystore.CIB("alice"): psk, keystore.AuthkeyID: auth} {
		sec, err := srv.Client(t).Logical().Read(mount + "/metadata/" + s.path(string(id)))
		if err != nil || sec == nil {
			t.Fatalf("read metadata: %v", err)
		}
		dump := fmt.Sprintf("%v", sec.Data)
		for _, form := range []string{hex.EncodeToString(k)[:32], base64.StdEncoding.EncodeToString(k)[:32]} {
			if strings.Contains(dump, form) {
				t.Fatalf("metadata of %s holds key material", id)
			}
		}
		if !strings.Contains(dump, k.Fingerprint()) {
			t.Errorf("metadata of %s lacks the fingerprint: %s", id, dump)
		}
	}
	// The authkey is stored as base64 in the data.
	sec, err := srv.Client(t).KVv2(mount).Get(ctx, s.path("authkey"))
	if err != nil || sec.Data["key"] != base64.StdEncoding.EncodeToString(auth) {
		t.Errorf("authkey data is not base64 of the key: %v", err)
	}
}

func TestMountErrors(t *testing.T) {
	needVault(t)
	// secret/ is KV version 1 on Vault's test core.
	_, err := open(t, Options{Mount: "secret"})
	if !errors.Is(err, ErrKVv1) || !strings.Contains(err.Error(), "vault kv enable-versioning secret/") {
		t.Errorf("KV v1 mount: %v", err)
	}
	_, err = open(t, Options{Mount: "nosuchmount"})
	if !errors.Is(err, ErrMountMissing) || !strings.Contains(err.Error(), "vault secrets enable -path=nosuchmount -version=2 kv") {
		t.Errorf("missing mount: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	needVault(t)
	_, err := open(t, Options{Address: "http://127.0.0.1:1"})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable: %v", err)
	}
}

func TestNoToken(t *testing.T) {
	needVault(t)
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("HOME", t.TempDir())
	_, err := Open(context.Background(), Options{Address: srv.Addr, Mount: mount, Prefix: randomPrefix()})
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	// ~/.vault-token, as the vault CLI leaves it.
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, ".vault-token"), []byte(srv.RootToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Options{Address: srv.Addr, Mount: mount, Prefix: randomPrefix()})
	if err != nil {
		t.Fatalf("token from ~/.vault-token: %v", err)
	}
	s.Close()
}

// TestPermissionDenied: a token that may only read names the path and the
// capability it lacks when it writes.
func TestPermissionDenied(t *testing.T) {
	needVault(t)
	root := srv.Client(t)
	prefix := randomPrefix()
	policy := fmt.Sprintf("path \"%s/data/%s/*\" { capabilities = [\"read\"] }\n", mount, prefix)
	if err := root.Sys().PutPolicy("readonly-"+prefix[len(prefix)-6:], policy); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"readonly-" + prefix[len(prefix)-6:]}})
	if err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, Options{Prefix: prefix, Auth: Auth{Token: tok.Auth.ClientToken}})
	k, _ := keys.Generate(keys.PSK, 32)
	_, err = s.Put(context.Background(), keystore.CIB("alice"), k, keystore.PutOptions{})
	want := fmt.Sprintf("needs the \"create/update\" capability on %s/data/%s/cib/alice", mount, prefix)
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), want) {
		t.Errorf("denied write: %v\nwant it to say %s", err, want)
	}
}

// TestDestroyErasesEveryVersion: after a destroy, Vault itself holds no
// data for any version of the credential (read with the root token,
// around the store), and keeps their metadata.
func TestDestroyErasesEveryVersion(t *testing.T) {
	needVault(t)
	prefix := randomPrefix()
	s := mustOpen(t, Options{Prefix: prefix})
	ctx := context.Background()
	id := keystore.CIB("bob")
	for cas := 0; cas < 2; cas++ {
		k, _ := keys.Generate(keys.PSK, 32)
		if _, err := s.Put(ctx, id, k, keystore.PutOptions{CAS: cas}); err != nil {
			t.Fatal(err)
		}
	}
	kv := srv.Client(t).KVv2(mount)
	p := prefix + "/cib/bob"
	if sec, err := kv.GetVersion(ctx, p, 1); err != nil || sec.Data["key"] == nil {
		t.Fatalf("version 1 before the destroy: %v", err)
	}
	if err := s.Destroy(ctx, id, 2); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 2; v++ {
		sec, err := kv.GetVersion(ctx, p, v)
		if err == nil && sec != nil && (sec.Data != nil || !sec.VersionMetadata.Destroyed) {
			t.Errorf("version %d after the destroy: data %v, destroyed %v", v, sec.Data != nil, sec.VersionMetadata.Destroyed)
		}
	}
	if meta, err := kv.GetMetadata(ctx, p); err != nil || len(meta.Versions) != 2 {
		t.Errorf("metadata after the destroy: %+v, %v", meta, err)
	}
}
