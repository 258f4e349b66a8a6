package filestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// ErrChanged is a restore refused because the store changed since the
// backup (RestoreOptions.Force restores anyway). Nothing was changed.
var ErrChanged = errors.New("the store changed since the backup")

// RestoreOptions say how to restore an archive.
type RestoreOptions struct {
	// Identities decrypt the archive besides the store's own identity
	// (an archive made with other recipients).
	Identities []age.Identity
	// Force restores over a store whose state differs from the archive's.
	Force bool
	// Holder is the owner of the cluster's lock (keystore.Store.Lock) the
	// caller holds: a restore replaces the whole store, so it runs only
	// under that lock, which it carries into the restored store. Unused
	// by a dry run and by RestoreNew (no store, no lock).
	Holder string
	// DryRun checks the archive and compares it with the store; nothing
	// is written.
	DryRun bool
}

// RestoreResult says what a restore did, or would do.
type RestoreResult struct {
	Archive BackupInfo `json:"archive"`
	Store   string     `json:"store"`
	DryRun  bool       `json:"dry_run"`
	// Created is set when no store existed and the restore made it.
	Created bool `json:"created"`
	// Changed is set when the store's state differed from the archive's;
	// Differences name how, record by record.
	Changed     bool     `json:"changed"`
	Differences []string `json:"differences"`
	// Readmitted are admins the store had revoked (or was revoking) who
	// are active in the archive: the restored store gives them access
	// again until they are revoked again.
	Readmitted []string `json:"readmitted"`
	// Dropped are admins the store had and the archive does not.
	Dropped []string `json:"dropped"`
	// AuthkeyChanged is set when the restored authkey is not the one the
	// store had: on a running cluster it must reach the hosts by the live
	// procedure, not a bare write.
	AuthkeyChanged bool `json:"authkey_changed"`
	// Leftover is the replaced store's directory, if it could not be
	// removed after the swap.
	Leftover string `json:"leftover,omitempty"`
}

// Restore replaces the whole store with an archive's content, all at once:
// the archive is decrypted and checked first, then written, keys
// re-encrypted to this store's identity, to a new directory beside the
// store, which is swapped in with one renameat2(RENAME_EXCHANGE) and the
// old one removed. A failure at any step leaves the store as it was;
// readers and writers never see a half-restored store.
//
// Check-and-set: under the store's exclusive lock, the store's state is
// compared with the one the archive recorded; if they differ, the restore
// is refused (ErrChanged) unless opts.Force. The caller must hold the
// cluster's lock as opts.Holder.
func (s *Store) Restore(ctx context.Context, r io.Reader, opts RestoreOptions) (RestoreResult, error) {
	res := RestoreResult{Store: s.dir, DryRun: opts.DryRun, Differences: []string{}, Readmitted: []string{}, Dropped: []string{}}
	a, err := readArchive(r, append([]age.Identity{s.identity}, opts.Identities...))
	if err != nil {
		return res, err
	}
	defer a.wipe()
	res.Archive = a.info()
	files, err := s.render(a)
	if err != nil {
		return res, err
	}
	err = s.withLock(ctx, !opts.DryRun, func() error {
		cur, err := s.snapshot(false)
		res.compare(cur, err, a)
		if res.Changed && !opts.Force {
			return fmt.Errorf("%w: %s; nothing was restored (--force restores over it)", ErrChanged, strings.Join(res.Differences, "; "))
		}
		if opts.DryRun {
			return nil
		}
		lock, err := s.heldLock(opts.Holder)
		if err != nil {
			return err
		}
		files = append(files, storeFile{"lock.json", lock})
		res.Leftover, err = swapIn(s.dir, files)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", s.dir, err)
	}
	return res, nil
}

// RestoreNew makes the store in dir, which must not exist, from an
// archive: after a lost disk, or on another machine. The identity in
// identityPath is used if it exists (and decrypts the archive, with
// opts.Identities); otherwise a new one is made there and the archive must
// be decrypted by opts.Identities. The new directory appears at once, with
// every file in it, or not at all.
func RestoreNew(dir, identityPath string, r io.Reader, opts RestoreOptions) (RestoreResult, error) {
	res := RestoreResult{Store: dir, DryRun: opts.DryRun, Created: true, Differences: []string{}, Readmitted: []string{}, Dropped: []string{}}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("restore into %s: it exists (%v): restore into an existing store, not a new one", dir, err)
	}
	ids := opts.Identities
	var id *age.X25519Identity
	_, err := os.Lstat(identityPath)
	switch {
	case err == nil:
		if id, err = loadIdentity(identityPath); err != nil {
			return res, fmt.Errorf("restore into %s: %w", dir, err)
		}
		ids = append([]age.Identity{id}, ids...)
	case !errors.Is(err, fs.ErrNotExist):
		return res, fmt.Errorf("restore into %s: identity: %w", dir, err)
	case len(ids) == 0:
		return res, fmt.Errorf("%w: the store's identity %s is missing too: give the identity the archive was encrypted to (--identity-file)", ErrBadArchive, identityPath)
	}
	a, err := readArchive(r, ids)
	if err != nil {
		return res, err
	}
	defer a.wipe()
	res.Archive = a.info()
	if opts.DryRun {
		return res, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return res, fmt.Errorf("restore into %s: %w", dir, err)
	}
	made := false
	if id == nil {
		if err := createIdentity(identityPath); err != nil {
			return res, fmt.Errorf("restore into %s: %w", dir, err)
		}
		made = true
		if id, err = loadIdentity(identityPath); err != nil {
			os.Remove(identityPath)
			return res, fmt.Errorf("restore into %s: %w", dir, err)
		}
	}
	s := &Store{dir: dir, identity: id, now: time.Now}
	files, err := s.render(a)
	if err == nil {
		_, err = swapIn(dir, files)
	}
	if err != nil && made {
		os.Remove(identityPath)
	}
	if err != nil {
		return res, fmt.Errorf("restore into %s: %w", dir, err)
	}
	return res, nil
}

// storeFile is a file of a store being built, by its path in the store.
type storeFile struct {
	rel  string
	data []byte
}

// render is the store an archive describes, as files: every key
// encrypted to this store's identity, never written in the clear.
func (s *Store) render(a *archive) ([]storeFile, error) {
	var files []storeFile
	for _, c := range a.Credentials {
		dir := filepath.Join("credentials", filepath.FromSlash(string(c.ID)))
		for _, k := range c.Keys {
			ct, err := s.encrypt(k.Key)
			if err != nil {
				return nil, fmt.Errorf("%s version %d: %w", c.ID, k.Version, err)
			}
			files = append(files, storeFile{keyFile(dir, k.Version), ct})
		}
		data, err := json.MarshalIndent(c.meta, "", "  ")
		if err != nil {
			return nil, err
		}
		files = append(files, storeFile{filepath.Join(dir, "meta.json"), data})
	}
	for _, ad := range a.Admins {
		data, err := json.MarshalIndent(ad, "", "  ")
		if err != nil {
			return nil, err
		}
		files = append(files, storeFile{filepath.Join("admins", ad.User+".json"), data})
	}
	return files, nil
}

// heldLock returns the lock record, which must say holder holds the lock.
func (s *Store) heldLock(holder string) ([]byte, error) {
	cur, err := s.readLock()
	if err != nil {
		return nil, err
	}
	if holder == "" || cur.Revision == 0 || cur.Released || cur.Owner != holder || !s.now().Before(cur.Expires) {
		return nil, fmt.Errorf("a restore runs only under the cluster's lock, and %q does not hold it: %w", holder, keystore.ErrConflict)
	}
	return json.Marshal(cur)
}

// swapIn builds a store of files in a new directory beside dir, then puts
// it in dir's place: exchanged with dir if it exists, else renamed to it
// (never over a directory made meanwhile). It returns the replaced
// store's directory if removing it failed.
func swapIn(dir string, files []storeFile) (string, error) {
	parent := filepath.Dir(dir)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restore-")
	if err != nil {
		return "", err
	}
	swapped := false
	defer func() {
		if !swapped {
			os.RemoveAll(tmp)
		}
	}()
	if err := build(tmp, files); err != nil {
		return "", err
	}
	exchange := true
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		exchange = false
	}
	if exchange {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			return "", fmt.Errorf("the file system of %s cannot swap two directories at once (renameat2 RENAME_EXCHANGE): %w; nothing was changed", parent, err)
		}
	} else {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		return "", fmt.Errorf("put the restored store in place: %w", err)
	}
	swapped = true
	if err := syncDir(parent); err != nil {
		return "", fmt.Errorf("fsync %s: %w", parent, err)
	}
	if !exchange {
		return "", nil
	}
	if err := os.RemoveAll(tmp); err != nil {
		return tmp, nil
	}
	return "", nil
}

// build writes files under root, then fsyncs every directory.
func build(root string, files []storeFile) error {
	for _, f := range files {
		if err := writeFile(filepath.Join(root, f.rel), f.data); err != nil {
			return fmt.Errorf("write %s: %w", f.rel, err)
		}
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return syncDir(p)
	})
}
