package vaultstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// Errors a user meets, each with what to do.
var (
	ErrSealed       = errors.New("vault is sealed: unseal it (vault operator unseal) and rerun")
	ErrUnreachable  = errors.New("cannot reach vault")
	ErrPermission   = errors.New("permission denied")
	ErrMountMissing = errors.New("no KV secrets engine at the mount")
	ErrKVv1         = errors.New("the mount is KV version 1; pcmkeys needs version 2")
	ErrAuth         = errors.New("vault login failed")
)

// translate turns a vault/api error for op on path into one of this
// package's errors, naming the path and, for a denial, the capability
// that is missing. Vault's own text is kept after it.
func (s *Store) translate(err error, op, path, capability string) error {
	if err == nil {
		return nil
	}
	full := s.mount + "/" + path
	var re *vault.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		switch {
		case re.StatusCode == 403 && !s.tokenValid():
			return fmt.Errorf("%s %s: %w: the Vault token is invalid or has expired; log in again (vault login) or check store.auth", op, full, ErrAuth)
		case re.StatusCode == 403:
			return fmt.Errorf("%w: %s %s needs the %q capability on %s (token policies lack it)", ErrPermission, op, full, capability, full)
		case re.StatusCode == 503 && strings.Contains(strings.ToLower(msg), "sealed"):
			return fmt.Errorf("%s %s: %w", op, full, ErrSealed)
		case re.StatusCode == 400 && strings.Contains(msg, "check-and-set"):
			return fmt.Errorf("%s %s: %w", op, full, keystore.ErrConflict)
		case re.StatusCode == 404 && strings.Contains(msg, "no handler for route"):
			return fmt.Errorf("%s %s: %w %s/ (vault secrets enable -path=%s -version=2 kv)", op, full, ErrMountMissing, s.mount, s.mount)
		}
		return fmt.Errorf("%s %s: vault answered %d: %s", op, full, re.StatusCode, msg)
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("%s %s: %w at %s: %v", op, full, ErrUnreachable, s.client.Address(), rootCause(err))
	}
	return fmt.Errorf("%s %s: %w", op, full, err)
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// tokenValid asks Vault whether the client's token is still good; it is
// called only after a denial, to tell an expired token from a missing
// capability.
func (s *Store) tokenValid() bool {
	_, err := s.client.Auth().Token().LookupSelf()
	return err == nil
}
