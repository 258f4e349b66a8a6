package filestore

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"filippo.io/age"
	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/keys"
)

// createIdentity writes a new age X25519 identity to path, 0600, failing if
// the file exists.
func createIdentity(path string) error {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return fmt.Errorf("generate age identity: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("create identity: %w", err)
	}
	content := fmt.Sprintf("# pcmkeys file store identity; public key: %s\n%s\n", id.Recipient(), id)
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write identity %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("fsync identity %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close identity %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// loadIdentity reads the store's identity, refusing a file that others can
// read.
func loadIdentity(path string) (*age.X25519Identity, error) {
	if err := checkPrivate(path, false); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("identity %s: want one X25519 identity, found %d", path, len(ids))
	}
	id, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return nil, fmt.Errorf("identity %s: not an X25519 identity", path)
	}
	return id, nil
}

func (s *Store) encrypt(key keys.Secret) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, s.identity.Recipient())
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if _, err := w.Write(key.Bytes()); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return buf.Bytes(), nil
}

func (s *Store) decrypt(ciphertext []byte) (keys.Secret, error) {
	r, err := age.Decrypt(bytes.NewReader(ciphertext), s.identity)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(r, keys.MaxAuthkeyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return keys.Secret(b), nil
}

// writeFile replaces path atomically with data, mode 0600, and fsyncs its
// directory.
func writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	pf, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(0o600))
	if err != nil {
		return err
	}
	defer pf.Cleanup()
	if _, err := pf.Write(data); err != nil {
		return err
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return err
	}
	return syncDir(dir)
}

// readFile reads a store file without following links.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 16<<20))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
