package filestore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"golang.org/x/sys/unix"
)

// ParseRecipients parses age public keys (age1…), given one by one and in
// a recipients file (one a line, as age -R). A secret key given by mistake
// is refused without being repeated, and so is anything else (by its
// place on the command line).
func ParseRecipients(keys []string, file string) ([]age.Recipient, error) {
	var out []age.Recipient
	for i, k := range keys {
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(k)), "AGE-SECRET-KEY") {
			return nil, errors.New("recipient: that is an age secret key, not a public key (age1…): never give a secret key on a command line")
		}
		rs, err := age.ParseRecipients(strings.NewReader(k))
		if err != nil || len(rs) != 1 || strings.ContainsAny(k, "\r\n") {
			// Not repeated: it may be a mangled secret key.
			return nil, fmt.Errorf("recipient %d: not an age public key (age1…)", i+1)
		}
		out = append(out, rs[0])
	}
	if file == "" {
		return out, nil
	}
	f, err := os.OpenFile(file, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("recipients file: %w", err)
	}
	defer f.Close()
	rs, err := age.ParseRecipients(f) // its errors never quote a line
	if err != nil {
		return nil, fmt.Errorf("recipients file %s: %w", file, err)
	}
	return append(out, rs...), nil
}

// ReadIdentities reads an age identity file (links not followed).
func ReadIdentities(path string) ([]age.Identity, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f) // its errors never quote a line
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	return ids, nil
}

// WriteArchive creates path (O_EXCL, mode 0600, links not followed) with
// data, and fsyncs it and its directory. An existing file is never
// replaced (an error wrapping fs.ErrExist); on any other failure the new
// file is removed.
func WriteArchive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadArchive reads an archive file (links not followed), up to the size
// a restore accepts.
func ReadArchive(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 2*maxArchive))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}
