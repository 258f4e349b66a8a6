// Package vaultstore keeps pcmkeys's credentials in HashiCorp Vault's KV
// version 2 secrets engine, the source of truth for a team: every write is
// check-and-set, every version is kept, and many operators and scheduled
// jobs on different machines share one Vault (HA, Raft) safely.
//
// # Layout
//
// Under a KV v2 mount (default "secret") and a prefix (default
// "pcmkeys/CLUSTER"):
//
//	PREFIX/cib/IDENTITY   a CIB PSK: data {"key": hex, "fingerprint", "created_by"}
//	PREFIX/authkey        the authkey: data {"key": base64, "fingerprint", "created_by"}
//	PREFIX/admins/USER    who holds what: data {"user", "identity", "clients", "onboarded"}
//
// A credential's custom metadata (never a key) holds "kind", and for each
// kept version N "vN" = "FINGERPRINT CREATOR", plus "holders" when the
// lifecycle names them. A revoked per-user key is destroyed (every
// version's data erased, not only soft-deleted); its metadata — version
// numbers, dates, fingerprints — stays for the audit.
//
// An admin record's KV version is its revision: updates are check-and-set
// on it. Deleting a record writes a tombstone version with check-and-set,
// then deletes the record's metadata.
//
// # Connecting
//
// The Vault client is configured from the standard environment (VAULT_ADDR,
// VAULT_CACERT, VAULT_CAPATH, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY,
// VAULT_NAMESPACE, VAULT_SKIP_VERIFY is refused) and the token from
// VAULT_TOKEN or ~/.vault-token, unless [Options] name an AppRole or
// userpass login; a token from a login is renewed while the store is open.
package vaultstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/userpass"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// Options say where the store is and how to log in.
type Options struct {
	// Address overrides VAULT_ADDR.
	Address string
	// Mount is the KV v2 mount; Prefix the path under it.
	Mount, Prefix string
	// Auth is how to get a token; the zero value uses VAULT_TOKEN or
	// ~/.vault-token.
	Auth Auth
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Auth methods.
const (
	AuthToken    = "token"
	AuthAppRole  = "approle"
	AuthUserpass = "userpass"
)

// Auth is a login method. Secrets come from files, never from the config.
type Auth struct {
	Method string // token (default), approle or userpass
	// Token, for method token, is used instead of VAULT_TOKEN and
	// ~/.vault-token (tests, and callers that read it from a file).
	Token string
	// MountPath is the auth mount, default the method's name.
	MountPath string
	// AppRole.
	RoleID       string
	SecretIDFile string
	// Userpass.
	Username     string
	PasswordFile string
}

// Store is the Vault KV v2 store.
type Store struct {
	client  *vault.Client
	kv      *vault.KVv2
	mount   string
	prefix  string
	now     func() time.Time
	stopRen context.CancelFunc
}

var _ keystore.Store = (*Store)(nil)

// Open connects to Vault, logs in and checks that the mount is KV v2.
func Open(ctx context.Context, opts Options) (*Store, error) {
	cfg := vault.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault config from environment: %w", cfg.Error)
	}
	if os.Getenv("VAULT_SKIP_VERIFY") != "" {
		return nil, errors.New("VAULT_SKIP_VERIFY is set: pcmkeys always verifies Vault's TLS certificate; unset it and set VAULT_CACERT")
	}
	if opts.Address != "" {
		cfg.Address = opts.Address
	}
	client, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	s := &Store{
		client: client, mount: strings.Trim(opts.Mount, "/"), prefix: strings.Trim(opts.Prefix, "/"),
		now: opts.Now, stopRen: func() {},
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.kv = client.KVv2(s.mount)
	if err := s.login(ctx, opts.Auth); err != nil {
		return nil, err
	}
	if err := s.checkMount(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// TokenName returns the display name of the store's token (the Vault
// identity for the audit trail), or "" if Vault does not say.
func (s *Store) TokenName(ctx context.Context) string {
	sec, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil || sec == nil {
		return ""
	}
	name, _ := sec.Data["display_name"].(string)
	return name
}

// Close stops token renewal.
func (s *Store) Close() error {
	s.stopRen()
	return nil
}

func (s *Store) login(ctx context.Context, a Auth) error {
	var method vault.AuthMethod
	var err error
	switch a.Method {
	case "", AuthToken:
		if a.Token != "" {
			s.client.SetToken(a.Token)
		}
		if s.client.Token() == "" {
			if b, rerr := readTokenFile(); rerr == nil {
				s.client.SetToken(b)
			}
		}
		if s.client.Token() == "" {
			return fmt.Errorf("%w: no token: set VAULT_TOKEN, run vault login, or configure store.auth", ErrAuth)
		}
		return nil
	case AuthAppRole:
		var opts []approle.LoginOption
		if a.MountPath != "" {
			opts = append(opts, approle.WithMountPath(a.MountPath))
		}
		method, err = approle.NewAppRoleAuth(a.RoleID, &approle.SecretID{FromFile: a.SecretIDFile}, opts...)
	case AuthUserpass:
		var opts []userpass.LoginOption
		if a.MountPath != "" {
			opts = append(opts, userpass.WithMountPath(a.MountPath))
		}
		method, err = userpass.NewUserpassAuth(a.Username, &userpass.Password{FromFile: a.PasswordFile}, opts...)
	default:
		return fmt.Errorf("%w: unknown auth method %q (token, approle or userpass)", ErrAuth, a.Method)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrAuth, a.Method, err)
	}
	secret, err := s.client.Auth().Login(ctx, method)
	if err != nil {
		return fmt.Errorf("%w: %s login at %s: %v", ErrAuth, a.Method, s.client.Address(), rootCause(err))
	}
	s.renew(secret)
	return nil
}

// renew keeps a login token alive while the store is open.
func (s *Store) renew(secret *vault.Secret) {
	if secret == nil || secret.Auth == nil || !secret.Auth.Renewable {
		return
	}
	w, err := s.client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopRen = func() { cancel(); w.Stop() }
	go w.Start()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.DoneCh():
				return
			case <-w.RenewCh():
			}
		}
	}()
}

func readTokenFile() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(home, ".vault-token"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// checkMount asks Vault (as the vault CLI does) what is mounted at the
// mount, and refuses anything but KV version 2.
func (s *Store) checkMount(ctx context.Context) error {
	sec, err := s.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+s.mount)
	if err != nil {
		var re *vault.ResponseError
		if errors.As(err, &re) && (re.StatusCode == 400 || re.StatusCode == 404 || re.StatusCode == 403) {
			return fmt.Errorf("%w %s/ (vault secrets enable -path=%s -version=2 kv)", ErrMountMissing, s.mount, s.mount)
		}
		return s.translate(err, "check mount", "", "read")
	}
	if sec == nil || sec.Data == nil {
		return fmt.Errorf("%w %s/ (vault secrets enable -path=%s -version=2 kv)", ErrMountMissing, s.mount, s.mount)
	}
	typ, _ := sec.Data["type"].(string)
	if typ != "kv" && typ != "generic" {
		return fmt.Errorf("%w %s/: it is a %q engine", ErrMountMissing, s.mount, typ)
	}
	version := ""
	if o, ok := sec.Data["options"].(map[string]any); ok {
		version, _ = o["version"].(string)
	}
	if version != "2" {
		return fmt.Errorf("%s/: %w (vault kv enable-versioning %s/)", s.mount, ErrKVv1, s.mount)
	}
	return nil
}

// path returns the secret path of a record under the prefix.
func (s *Store) path(rel string) string {
	if s.prefix == "" {
		return rel
	}
	return s.prefix + "/" + rel
}
