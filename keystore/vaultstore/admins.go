package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	vault "github.com/hashicorp/vault/api"

	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

func (s *Store) adminPath(user string) string { return s.path("admins/" + user) }

// GetAdmin implements keystore.Store. For a deleted record whose tombstone
// is still there, the error wraps ErrNotFound and the returned Admin has
// the tombstone's Revision, so a new record can be written over it.
func (s *Store) GetAdmin(ctx context.Context, user string) (keystore.Admin, error) {
	if err := policies.ValidateUser(user); err != nil {
		return keystore.Admin{}, err
	}
	p := s.adminPath(user)
	sec, err := s.kv.Get(ctx, p)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return keystore.Admin{}, fmt.Errorf("admin %s: %w", user, keystore.ErrNotFound)
	}
	if err != nil {
		return keystore.Admin{}, s.translate(err, "read", "data/"+p, "read")
	}
	if sec == nil || sec.Data == nil || sec.Data["deleted"] == true {
		rev := 0
		if sec != nil && sec.VersionMetadata != nil {
			rev = sec.VersionMetadata.Version
		}
		return keystore.Admin{Revision: rev}, fmt.Errorf("admin %s: %w", user, keystore.ErrNotFound)
	}
	var a keystore.Admin
	raw, err := json.Marshal(sec.Data)
	if err == nil {
		err = json.Unmarshal(raw, &a)
	}
	if err != nil || a.User != user {
		return keystore.Admin{}, fmt.Errorf("vault: record of admin %s is malformed", user)
	}
	a.Revision = sec.VersionMetadata.Version
	return a, nil
}

// PutAdmin implements keystore.Store.
func (s *Store) PutAdmin(ctx context.Context, a keystore.Admin) (keystore.Admin, error) {
	if err := a.Validate(); err != nil {
		return a, err
	}
	raw, err := json.Marshal(a)
	if err != nil {
		return a, err
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		return a, err
	}
	p := s.adminPath(a.User)
	sec, err := s.kv.Put(ctx, p, data, vault.WithCheckAndSet(a.Revision))
	if err != nil {
		return a, s.translate(err, "write", "data/"+p, "create/update")
	}
	a.Revision = sec.VersionMetadata.Version
	return a, nil
}

// DeleteAdmin implements keystore.Store: a tombstone written with
// check-and-set, then the record's metadata and versions deleted.
func (s *Store) DeleteAdmin(ctx context.Context, user string, revision int) error {
	if err := policies.ValidateUser(user); err != nil {
		return err
	}
	p := s.adminPath(user)
	if _, err := s.kv.Put(ctx, p, map[string]any{"deleted": true}, vault.WithCheckAndSet(revision)); err != nil {
		err = s.translate(err, "delete", "data/"+p, "create/update")
		if errors.Is(err, keystore.ErrConflict) {
			if _, gerr := s.GetAdmin(ctx, user); errors.Is(gerr, keystore.ErrNotFound) {
				return fmt.Errorf("admin %s: %w", user, keystore.ErrNotFound)
			}
		}
		return err
	}
	if err := s.kv.DeleteMetadata(ctx, p); err != nil {
		return s.translate(err, "delete", "metadata/"+p, "delete")
	}
	return nil
}

// ListAdmins implements keystore.Store: one LIST, then one read per admin.
func (s *Store) ListAdmins(ctx context.Context) ([]keystore.Admin, error) {
	names, err := s.list(ctx, "admins")
	if err != nil {
		return nil, err
	}
	out := make([]keystore.Admin, 0, len(names))
	for _, n := range names {
		if policies.ValidateUser(n) != nil {
			continue
		}
		a, err := s.GetAdmin(ctx, n)
		if errors.Is(err, keystore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}
