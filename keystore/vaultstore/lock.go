package vaultstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/pcmkeys/pcmkeys/keystore"
)

func (s *Store) lockPath() string { return s.path("lock") }

// Lock implements keystore.Store: the lock is PREFIX/lock, taken with
// check-and-set against the version read.
func (s *Store) Lock(ctx context.Context, owner string, ttl time.Duration) (keystore.Lease, error) {
	p := s.lockPath()
	cur := 0
	sec, err := s.kv.Get(ctx, p)
	switch {
	case errors.Is(err, vault.ErrSecretNotFound):
	case err != nil:
		return keystore.Lease{}, s.translate(err, "read", "data/"+p, "read")
	default:
		cur = sec.VersionMetadata.Version
		holder, _ := sec.Data["owner"].(string)
		exp, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(sec.Data["expires"]))
		if sec.Data["released"] != true && s.now().Before(exp) {
			return keystore.Lease{}, &keystore.LockedError{Holder: holder, Expires: exp}
		}
	}
	exp := s.now().Add(ttl).UTC()
	out, err := s.kv.Put(ctx, p, map[string]any{"owner": owner, "expires": exp.Format(time.RFC3339Nano), "released": false}, vault.WithCheckAndSet(cur))
	if err != nil {
		err = s.translate(err, "take lock", "data/"+p, "create/update")
		if errors.Is(err, keystore.ErrConflict) {
			return keystore.Lease{}, fmt.Errorf("%w: another run took it at the same moment", keystore.ErrLocked)
		}
		return keystore.Lease{}, err
	}
	return keystore.Lease{Owner: owner, Expires: exp, Revision: out.VersionMetadata.Version}, nil
}

// Renew implements keystore.Store.
func (s *Store) Renew(ctx context.Context, l keystore.Lease, ttl time.Duration) (keystore.Lease, error) {
	p := s.lockPath()
	exp := s.now().Add(ttl).UTC()
	out, err := s.kv.Put(ctx, p, map[string]any{"owner": l.Owner, "expires": exp.Format(time.RFC3339Nano), "released": false}, vault.WithCheckAndSet(l.Revision))
	if err != nil {
		return l, s.translate(err, "renew lock", "data/"+p, "create/update")
	}
	l.Expires, l.Revision = exp, out.VersionMetadata.Version
	return l, nil
}

// Unlock implements keystore.Store.
func (s *Store) Unlock(ctx context.Context, l keystore.Lease) error {
	p := s.lockPath()
	_, err := s.kv.Put(ctx, p, map[string]any{"owner": l.Owner, "expires": l.Expires.Format(time.RFC3339Nano), "released": true}, vault.WithCheckAndSet(l.Revision))
	if err != nil {
		return s.translate(err, "release lock", "data/"+p, "create/update")
	}
	return nil
}

// BreakLock implements keystore.Store: check-and-set against the version
// that names holder.
func (s *Store) BreakLock(ctx context.Context, holder string) error {
	p := s.lockPath()
	sec, err := s.kv.Get(ctx, p)
	if err != nil {
		return s.translate(err, "read", "data/"+p, "read")
	}
	if sec.Data["released"] == true || sec.Data["owner"] != holder {
		return fmt.Errorf("the lock is no longer held by %s: %w", holder, keystore.ErrConflict)
	}
	_, err = s.kv.Put(ctx, p, map[string]any{"owner": holder, "expires": sec.Data["expires"], "released": true}, vault.WithCheckAndSet(sec.VersionMetadata.Version))
	if err != nil {
		return s.translate(err, "break lock", "data/"+p, "create/update")
	}
	return nil
}
