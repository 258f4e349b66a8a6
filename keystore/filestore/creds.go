package filestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/internal/holders"
)

// meta is a credential's meta.json.
type meta struct {
	ID       keystore.ID        `json:"id"`
	Versions []keystore.Version `json:"versions"`
}

func (m meta) current() int { return len(m.Versions) }

func (s *Store) credDir(id keystore.ID) string {
	return filepath.Join(s.dir, "credentials", filepath.FromSlash(string(id)))
}

func keyFile(dir string, v int) string { return filepath.Join(dir, fmt.Sprintf("v%06d.age", v)) }

// readMeta returns a credential's metadata; a missing one has no versions.
func (s *Store) readMeta(id keystore.ID) (meta, error) {
	m := meta{ID: id}
	data, err := readFile(filepath.Join(s.credDir(id), "meta.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("read %s: %w", id, err)
	}
	if err := json.Unmarshal(data, &m); err != nil || m.ID != id {
		return m, fmt.Errorf("file store: metadata of %s is corrupt", id)
	}
	return m, nil
}

func (s *Store) writeMeta(m meta) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(s.credDir(m.ID), "meta.json"), data)
}

// Get implements keystore.Store.
func (s *Store) Get(ctx context.Context, id keystore.ID) (keystore.Credential, error) {
	cred := keystore.Credential{ID: id}
	if err := id.Validate(); err != nil {
		return cred, err
	}
	err := s.withLock(ctx, false, func() error {
		m, err := s.readMeta(id)
		if err != nil {
			return err
		}
		v := m.current()
		if v == 0 {
			return fmt.Errorf("%s: %w", id, keystore.ErrNotFound)
		}
		cred.Version = m.Versions[v-1]
		if cred.Version.Destroyed {
			return fmt.Errorf("%s version %d: %w", id, v, keystore.ErrDestroyed)
		}
		ct, err := readFile(keyFile(s.credDir(id), v))
		if err != nil {
			return fmt.Errorf("%s version %d: %w", id, v, err)
		}
		key, err := s.decrypt(ct)
		if err != nil {
			return fmt.Errorf("%s version %d: %w", id, v, err)
		}
		if keys.Fingerprint(key) != cred.Version.Fingerprint {
			return fmt.Errorf("%s version %d: key does not match its recorded fingerprint", id, v)
		}
		cred.Key = key
		return nil
	})
	return cred, err
}

// Put implements keystore.Store.
func (s *Store) Put(ctx context.Context, id keystore.ID, key keys.Secret, opts keystore.PutOptions) (keystore.Version, error) {
	var ver keystore.Version
	if err := id.Validate(); err != nil {
		return ver, err
	}
	if err := keys.CheckSize(id.Kind(), len(key)); err != nil {
		return ver, fmt.Errorf("%s: %w", id, err)
	}
	ct, err := s.encrypt(key)
	if err != nil {
		return ver, err
	}
	err = s.withLock(ctx, true, func() error {
		m, err := s.readMeta(id)
		if err != nil {
			return err
		}
		if m.current() != opts.CAS {
			return fmt.Errorf("%s is at version %d, not %d: %w", id, m.current(), opts.CAS, keystore.ErrConflict)
		}
		ver = keystore.Version{
			Version:     m.current() + 1,
			Created:     s.now().UTC().Truncate(1e6),
			CreatedBy:   opts.CreatedBy,
			Fingerprint: keys.Fingerprint(key),
			Holders:     holders.Summary(opts.Holders),
		}
		// The key first, then the metadata that makes it current: a crash
		// in between leaves an unreferenced file, never a missing key.
		if err := writeFile(keyFile(s.credDir(id), ver.Version), ct); err != nil {
			return fmt.Errorf("write %s version %d: %w", id, ver.Version, err)
		}
		m.Versions = append(m.Versions, ver)
		return s.writeMeta(m)
	})
	return ver, err
}

// History implements keystore.Store.
func (s *Store) History(ctx context.Context, id keystore.ID) ([]keystore.Version, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	var out []keystore.Version
	err := s.withLock(ctx, false, func() error {
		m, err := s.readMeta(id)
		if err != nil {
			return err
		}
		if m.current() == 0 {
			return fmt.Errorf("%s: %w", id, keystore.ErrNotFound)
		}
		out = m.Versions
		return nil
	})
	return out, err
}

// Destroy implements keystore.Store.
func (s *Store) Destroy(ctx context.Context, id keystore.ID, cas int) error {
	if err := id.Validate(); err != nil {
		return err
	}
	return s.withLock(ctx, true, func() error {
		m, err := s.readMeta(id)
		if err != nil {
			return err
		}
		if m.current() == 0 {
			return fmt.Errorf("%s: %w", id, keystore.ErrNotFound)
		}
		if m.current() != cas {
			return fmt.Errorf("%s is at version %d, not %d: %w", id, m.current(), cas, keystore.ErrConflict)
		}
		// Metadata first: once it says destroyed, no reader tries the keys.
		for i := range m.Versions {
			m.Versions[i].Destroyed = true
		}
		if err := s.writeMeta(m); err != nil {
			return err
		}
		dir := s.credDir(id)
		for v := 1; v <= m.current(); v++ {
			if err := os.Remove(keyFile(dir, v)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("destroy %s version %d: %w", id, v, err)
			}
		}
		return syncDir(dir)
	})
}
