package filestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// adminFile is an admin record as stored, with its revision.
type adminFile struct {
	keystore.Admin
	Revision int `json:"revision"`
}

func (s *Store) adminPath(user string) string {
	return filepath.Join(s.dir, "admins", user+".json")
}

func (s *Store) readAdmin(user string) (keystore.Admin, error) {
	data, err := readFile(s.adminPath(user))
	if errors.Is(err, fs.ErrNotExist) {
		return keystore.Admin{}, fmt.Errorf("admin %s: %w", user, keystore.ErrNotFound)
	}
	if err != nil {
		return keystore.Admin{}, fmt.Errorf("admin %s: %w", user, err)
	}
	var af adminFile
	if err := json.Unmarshal(data, &af); err != nil || af.User != user {
		return keystore.Admin{}, fmt.Errorf("file store: record of admin %s is corrupt", user)
	}
	af.Admin.Revision = af.Revision
	return af.Admin, nil
}

// GetAdmin implements keystore.Store.
func (s *Store) GetAdmin(ctx context.Context, user string) (keystore.Admin, error) {
	if err := policies.ValidateUser(user); err != nil {
		return keystore.Admin{}, err
	}
	var a keystore.Admin
	err := s.withLock(ctx, false, func() (err error) {
		a, err = s.readAdmin(user)
		return err
	})
	return a, err
}

// PutAdmin implements keystore.Store.
func (s *Store) PutAdmin(ctx context.Context, a keystore.Admin) (keystore.Admin, error) {
	if err := a.Validate(); err != nil {
		return a, err
	}
	err := s.withLock(ctx, true, func() error {
		cur, err := s.readAdmin(a.User)
		if err != nil && !errors.Is(err, keystore.ErrNotFound) {
			return err
		}
		if cur.Revision != a.Revision {
			return fmt.Errorf("admin %s is at revision %d, not %d: %w", a.User, cur.Revision, a.Revision, keystore.ErrConflict)
		}
		a.Revision++
		data, err := json.MarshalIndent(adminFile{Admin: a, Revision: a.Revision}, "", "  ")
		if err != nil {
			return err
		}
		return writeFile(s.adminPath(a.User), data)
	})
	return a, err
}

// DeleteAdmin implements keystore.Store.
func (s *Store) DeleteAdmin(ctx context.Context, user string, revision int) error {
	if err := policies.ValidateUser(user); err != nil {
		return err
	}
	return s.withLock(ctx, true, func() error {
		cur, err := s.readAdmin(user)
		if err != nil {
			return err
		}
		if cur.Revision != revision {
			return fmt.Errorf("admin %s is at revision %d, not %d: %w", user, cur.Revision, revision, keystore.ErrConflict)
		}
		if err := os.Remove(s.adminPath(user)); err != nil {
			return fmt.Errorf("delete admin %s: %w", user, err)
		}
		return syncDir(filepath.Dir(s.adminPath(user)))
	})
}

// ListAdmins implements keystore.Store.
func (s *Store) ListAdmins(ctx context.Context) ([]keystore.Admin, error) {
	var out []keystore.Admin
	err := s.withLock(ctx, false, func() error {
		ents, err := os.ReadDir(filepath.Join(s.dir, "admins"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			user, ok := strings.CutSuffix(e.Name(), ".json")
			if !ok || policies.ValidateUser(user) != nil {
				continue
			}
			a, err := s.readAdmin(user)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, err
}
