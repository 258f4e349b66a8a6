package filestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// ErrBadArchive marks an archive a restore refuses: not age-encrypted,
// encrypted to no identity at hand, damaged, or not a file store backup.
// Nothing was changed.
var ErrBadArchive = errors.New("cannot restore this archive")

// readArchive decrypts an archive with any of ids and checks every record
// and key in it before anything is written. Its errors never hold archive
// content.
func readArchive(r io.Reader, ids []age.Identity) (*archive, error) {
	dr, err := age.Decrypt(r, ids...)
	var nomatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &nomatch):
		return nil, fmt.Errorf("%w: it was not encrypted to this store's identity (nor to any --identity-file given): %v", ErrBadArchive, err)
	case err != nil:
		return nil, fmt.Errorf("%w: not an age-encrypted pcmkeys backup, or its header is damaged: %v", ErrBadArchive, err)
	}
	// Read to the end: age authenticates the last chunk only there, so a
	// truncated archive fails here, not halfway through a restore.
	plain, err := io.ReadAll(io.LimitReader(dr, maxArchive+1))
	defer clear(plain)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: the archive is damaged (its encrypted content does not authenticate): %v", ErrBadArchive, err)
	case len(plain) > maxArchive:
		return nil, fmt.Errorf("%w: the archive holds more than %d MiB", ErrBadArchive, maxArchive>>20)
	}
	var a archive
	if err := json.Unmarshal(plain, &a); err != nil {
		// The decoder's message could quote what it read: say only where.
		return nil, fmt.Errorf("%w: not a pcmkeys file store backup (its content does not parse)", ErrBadArchive)
	}
	if err := a.check(); err != nil {
		a.wipe()
		return nil, fmt.Errorf("%w: %w", ErrBadArchive, err)
	}
	return &a, nil
}

// check refuses an archive whose records do not hold together: every
// credential's versions numbered from 1, credentials and admins sorted, a key for each version not
// destroyed that matches its recorded fingerprint and size, valid names,
// and the digest of what it holds equal to the one it states.
func (a *archive) check() error {
	if a.Format != archiveFormat {
		return fmt.Errorf("not a pcmkeys file store backup (format %.40q, want %q)", a.Format, archiveFormat)
	}
	var last keystore.ID
	for _, c := range a.Credentials {
		if err := c.ID.Validate(); err != nil {
			return fmt.Errorf("credential: %w", err)
		}
		if c.ID <= last {
			return fmt.Errorf("%s: credentials out of order, or twice", c.ID)
		}
		last = c.ID
		if len(c.Versions) == 0 {
			return fmt.Errorf("%s has no versions", c.ID)
		}
		next := 0
		for i, v := range c.Versions {
			if v.Version != i+1 {
				return fmt.Errorf("%s: version %d is numbered %d", c.ID, i+1, v.Version)
			}
			if v.Destroyed {
				continue
			}
			if next >= len(c.Keys) || c.Keys[next].Version != v.Version {
				return fmt.Errorf("%s version %d: its key is missing", c.ID, v.Version)
			}
			key := c.Keys[next].Key
			next++
			if err := keys.CheckSize(c.ID.Kind(), len(key)); err != nil {
				return fmt.Errorf("%s version %d: %w", c.ID, v.Version, err)
			}
			if keys.Fingerprint(key) != v.Fingerprint {
				return fmt.Errorf("%s version %d: the key does not match its recorded fingerprint", c.ID, v.Version)
			}
		}
		if next != len(c.Keys) {
			return fmt.Errorf("%s: keys for versions it does not list, or for destroyed ones", c.ID)
		}
	}
	lastUser := ""
	for _, ad := range a.Admins {
		if err := ad.Validate(); err != nil {
			return fmt.Errorf("admin record: %w", err)
		}
		if ad.User <= lastUser {
			return fmt.Errorf("admin %s: records out of order, or twice", ad.User)
		}
		lastUser = ad.User
		if ad.Revision < 1 {
			return fmt.Errorf("admin %s: revision %d", ad.User, ad.Revision)
		}
	}
	if d := a.digest(); d != a.State {
		return fmt.Errorf("its records do not match the state it states (%s, computed %s)", a.State, d)
	}
	return nil
}
