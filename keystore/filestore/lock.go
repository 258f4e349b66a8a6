package filestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/pcmkeys/pcmkeys/keystore"
)

type lockFile struct {
	keystore.Lease
	Revision int  `json:"revision"`
	Released bool `json:"released"`
}

func (s *Store) lockPath() string { return filepath.Join(s.dir, "lock.json") }

func (s *Store) readLock() (lockFile, error) {
	var lf lockFile
	data, err := readFile(s.lockPath())
	if errors.Is(err, fs.ErrNotExist) {
		return lf, nil
	}
	if err != nil {
		return lf, err
	}
	if err := json.Unmarshal(data, &lf); err != nil {
		return lf, fmt.Errorf("file store: lock record is corrupt")
	}
	return lf, nil
}

func (s *Store) writeLock(lf lockFile) error {
	data, err := json.Marshal(lf)
	if err != nil {
		return err
	}
	return writeFile(s.lockPath(), data)
}

// Lock implements keystore.Store.
func (s *Store) Lock(ctx context.Context, owner string, ttl time.Duration) (keystore.Lease, error) {
	var lease keystore.Lease
	err := s.withLock(ctx, true, func() error {
		cur, err := s.readLock()
		if err != nil {
			return err
		}
		now := s.now()
		if cur.Revision > 0 && !cur.Released && now.Before(cur.Expires) {
			return &keystore.LockedError{Holder: cur.Owner, Expires: cur.Expires}
		}
		lease = keystore.Lease{Owner: owner, Expires: now.Add(ttl), Revision: cur.Revision + 1}
		return s.writeLock(lockFile{Lease: lease, Revision: lease.Revision})
	})
	return lease, err
}

// Renew implements keystore.Store.
func (s *Store) Renew(ctx context.Context, l keystore.Lease, ttl time.Duration) (keystore.Lease, error) {
	err := s.withLock(ctx, true, func() error {
		cur, err := s.readLock()
		if err != nil {
			return err
		}
		if cur.Revision != l.Revision || cur.Released {
			return fmt.Errorf("lock of %s was taken over: %w", l.Owner, keystore.ErrConflict)
		}
		l.Expires, l.Revision = s.now().Add(ttl), cur.Revision+1
		return s.writeLock(lockFile{Lease: l, Revision: l.Revision})
	})
	return l, err
}

// Unlock implements keystore.Store.
func (s *Store) Unlock(ctx context.Context, l keystore.Lease) error {
	return s.withLock(ctx, true, func() error {
		cur, err := s.readLock()
		if err != nil {
			return err
		}
		if cur.Revision != l.Revision || cur.Released {
			return fmt.Errorf("lock of %s was taken over: %w", l.Owner, keystore.ErrConflict)
		}
		cur.Released = true
		return s.writeLock(cur)
	})
}

// BreakLock implements keystore.Store.
func (s *Store) BreakLock(ctx context.Context, holder string) error {
	return s.withLock(ctx, true, func() error {
		cur, err := s.readLock()
		if err != nil {
			return err
		}
		if cur.Released || cur.Owner != holder {
			return fmt.Errorf("the lock is no longer held by %s: %w", holder, keystore.ErrConflict)
		}
		cur.Released = true
		cur.Revision++
		return s.writeLock(cur)
	})
}
