// Package filestore is the embedded key store: a directory on this machine
// that keeps every credential version encrypted at rest with age.
//
// It is the quickstart's default and suits one machine; Vault is the store
// for a team. Both implement [keystore.Store] and pass the same contract
// tests.
//
// # Layout
//
//	DIR/                         0700, owned by the user running pcmkeys
//	  lock                       flock(2): shared to read, exclusive to write
//	  credentials/cib/IDENTITY/  one directory per credential
//	    meta.json                the version list: numbers, dates, creators,
//	                             fingerprints (no key material)
//	    v000001.age              version 1's key, encrypted to the identity
//	  credentials/authkey/...
//	  admins/USER.json           who holds what, with its revision
//	  lock.json                  the cluster's lock (keystore.Store.Lock)
//	DIR.agekey                   the age X25519 identity, 0600 (beside the
//	                             store by default; store.identity moves it)
//
// Every file is written with renameio (a temp file in the same directory,
// fsynced, renamed) and the directory is fsynced after. Two pcmkeys
// processes are serialised by the lock, so check-and-set holds across
// processes too.
//
// Anyone who holds the identity file and the store can read every key:
// keep the identity off backups of the store, or on another disk.
//
// # Backup and restore
//
// [Store.Backup] writes the whole store as one age-encrypted archive (to
// the store's own recipient, or to others); [Store.Restore] puts an
// archive back all at once (a new directory swapped in), with
// check-and-set: it is refused if the store changed since the backup,
// unless forced. [RestoreNew] makes a lost store again from an archive.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// Store is the embedded file store.
type Store struct {
	dir      string
	identity *age.X25519Identity
	now      func() time.Time
}

var _ keystore.Store = (*Store)(nil)

// Options for Open.
type Options struct {
	// Create makes the store directory and the identity if they are absent.
	Create bool
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// ErrNoStore is returned by Open without Create when the store is absent.
var ErrNoStore = errors.New("file store does not exist (run pcmkeys init)")

// Open opens the store in dir with the age identity in identityPath.
func Open(dir, identityPath string, opts Options) (*Store, error) {
	s := &Store{dir: dir, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	fi, err := os.Lstat(dir)
	switch {
	case os.IsNotExist(err) && opts.Create:
		if _, err := os.Lstat(identityPath); err == nil {
			return nil, fmt.Errorf("file store %s: the directory is missing but its identity %s exists; refusing to start a new store over it", dir, identityPath)
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return nil, fmt.Errorf("file store %s: %w", dir, err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, fmt.Errorf("file store %s: %w", dir, err)
		}
		if err := createIdentity(identityPath); err != nil {
			return nil, fmt.Errorf("file store %s: %w", dir, err)
		}
	case os.IsNotExist(err):
		return nil, fmt.Errorf("%s: %w", dir, ErrNoStore)
	case err != nil:
		return nil, fmt.Errorf("file store %s: %w", dir, err)
	case fi.Mode()&os.ModeSymlink != 0:
		return nil, fmt.Errorf("file store %s is a symbolic link: pcmkeys never follows one to its keys; set store.path to the real directory", dir)
	case !fi.IsDir():
		return nil, fmt.Errorf("file store %s: not a directory", dir)
	}
	if err := checkPrivate(dir, true); err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	}
	id, err := loadIdentity(identityPath)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", dir, err)
	}
	s.identity = id
	return s, nil
}

// checkPrivate refuses a path that is a link, is not owned by this user, or
// gives group or other any access.
func checkPrivate(path string, dir bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	typ := uint32(unix.S_IFREG)
	if dir {
		typ = unix.S_IFDIR
	}
	switch {
	case st.Mode&unix.S_IFMT != typ:
		return fmt.Errorf("%s: not a %s (links are not followed)", path, map[bool]string{true: "directory", false: "regular file"}[dir])
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s: owned by uid %d, not by you (uid %d)", path, st.Uid, os.Geteuid())
	case st.Mode&0o077 != 0:
		return fmt.Errorf("%s: mode %04o gives group or other access; chmod go= %s", path, st.Mode&0o7777, path)
	}
	return nil
}

// Close implements keystore.Store.
func (s *Store) Close() error { return nil }

// withLock runs fn holding the store's lock, shared or exclusive, waiting
// for it until ctx ends.
func (s *Store) withLock(ctx context.Context, exclusive bool, fn func() error) error {
	fd, err := s.lockFile(ctx, exclusive)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	defer unix.Flock(fd, unix.LOCK_UN)
	return fn()
}

// lockFile opens the lock file and takes its flock. A restore swaps the
// whole directory, lock file included, while it holds the old one: a
// process that was waiting then holds a lock nobody else takes, so the
// lock counts only if the file is still the one at the path; if not, it
// is taken again on the new one.
func (s *Store) lockFile(ctx context.Context, exclusive bool) (int, error) {
	path := filepath.Join(s.dir, "lock")
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return -1, fmt.Errorf("file store lock: %w", err)
		}
		if err := flock(ctx, fd, how); err != nil {
			unix.Close(fd)
			return -1, err
		}
		var held, now unix.Stat_t
		if err := unix.Fstat(fd, &held); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("file store lock: %w", err)
		}
		err = unix.Lstat(path, &now)
		if err == nil && held.Dev == now.Dev && held.Ino == now.Ino {
			return fd, nil
		}
		unix.Flock(fd, unix.LOCK_UN)
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return -1, fmt.Errorf("file store lock: %w", err)
		}
	}
}

// flock takes how on fd, waiting until ctx ends.
func flock(ctx context.Context, fd, how int) error {
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("file store lock: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("file store lock: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
