package distribute

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"

	"github.com/pcmkeys/pcmkeys/policies"
)

// ErrExists is returned by CreateNewFileOwned when the path exists.
var ErrExists = errors.New("file exists")

// CreateNewFileOwned writes content to a new file at path on this machine
// with mode, given to uid and gid (-1 keeps the current user's or group)
// before any byte is written: a temp file beside it (mode set before any
// byte is written), fsynced, then hard-linked to path — which fails if
// path exists, even a dangling link — and the directory fsynced. A failed
// run leaves no file behind and never replaces one.
func CreateNewFileOwned(path string, content []byte, mode fs.FileMode, uid, gid int) error {
	if err := policies.CheckMode(mode); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	pf, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(mode))
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer pf.Cleanup()
	if uid != -1 || gid != -1 {
		if err := pf.Chown(uid, gid); err != nil {
			return fmt.Errorf("give %s to uid %d gid %d: %w", path, uid, gid, err)
		}
	}
	if _, err := pf.Write(content); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := pf.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := os.Link(pf.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w; remove it first or choose another path", path, ErrExists)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := pf.Cleanup(); err != nil { // drops the temp name; path keeps the file
		return fmt.Errorf("remove temporary name of %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory of %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory of %s: %w", path, err)
	}
	return nil
}
