package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// archiveFormat names the archive's layout; a restore refuses any other.
const archiveFormat = "pcmkeys-filestore-backup/1"

// maxArchive bounds the decrypted archive a restore reads.
const maxArchive = 64 << 20

// archive is the document a backup encrypts: the whole store, each key in
// the clear inside the age encryption only.
type archive struct {
	Format      string         `json:"format"`
	Created     time.Time      `json:"created"`
	Store       string         `json:"store"`
	State       string         `json:"state"`
	Credentials []archivedCred `json:"credentials"`
	Admins      []adminFile    `json:"admins"`
}

type archivedCred struct {
	meta
	// Keys are the versions not destroyed, oldest first.
	Keys []archivedKey `json:"keys"`
}

type archivedKey struct {
	Version int    `json:"version"`
	Key     []byte `json:"key"`
}

// BackupInfo says what an archive holds, without key material.
type BackupInfo struct {
	Created time.Time `json:"created"`
	// Store is the directory the archive was made from.
	Store string `json:"store"`
	// State is the digest of the store's records (every credential's
	// version list and every admin record, with its revision): a restore
	// compares the store's own with it to tell whether the store changed
	// since the backup.
	State       string           `json:"state"`
	Credentials []CredentialInfo `json:"credentials"`
	Admins      []AdminInfo      `json:"admins"`
}

// CredentialInfo is a credential in an archive: its current version.
type CredentialInfo struct {
	ID          keystore.ID `json:"id"`
	Version     int         `json:"version"`
	Fingerprint string      `json:"fingerprint"`
	// Versions counts the versions kept, destroyed ones included.
	Versions  int  `json:"versions"`
	Destroyed bool `json:"destroyed"`
}

// AdminInfo is an admin record in an archive.
type AdminInfo struct {
	User     string `json:"user"`
	Identity string `json:"identity"`
	// State is active, revoking (a revocation started and did not finish)
	// or revoked.
	State    string `json:"state"`
	Revision int    `json:"revision"`
}

func adminState(a keystore.Admin) string {
	switch {
	case a.Active():
		return "active"
	case a.RevocationFinished():
		return "revoked"
	}
	return "revoking"
}

func (a *archive) info() BackupInfo {
	in := BackupInfo{Created: a.Created, Store: a.Store, State: a.State, Credentials: []CredentialInfo{}, Admins: []AdminInfo{}}
	for _, c := range a.Credentials {
		cur := c.Versions[len(c.Versions)-1]
		in.Credentials = append(in.Credentials, CredentialInfo{ID: c.ID, Version: cur.Version, Fingerprint: cur.Fingerprint, Versions: len(c.Versions), Destroyed: cur.Destroyed})
	}
	for _, a := range a.Admins {
		in.Admins = append(in.Admins, AdminInfo{User: a.User, Identity: a.Identity, State: adminState(a.Admin), Revision: a.Revision})
	}
	return in
}

// Recipient is the store's own age recipient: the public half of its
// identity, to which a backup is encrypted by default.
func (s *Store) Recipient() age.Recipient { return s.identity.Recipient() }

// Backup writes one archive of the whole store to w, encrypted with age to
// recipients (the store's own recipient if none): every credential's
// versions and their keys (destroyed ones stay destroyed), and every admin
// record with its revision. The lock (lock.json) is not data and is left
// out. The store is read under its shared lock, so the archive is one
// consistent state. Key material is decrypted only in memory, and is in
// the clear only inside the age encryption.
func (s *Store) Backup(ctx context.Context, w io.Writer, recipients ...age.Recipient) (BackupInfo, error) {
	if len(recipients) == 0 {
		recipients = []age.Recipient{s.Recipient()}
	}
	var a *archive
	err := s.withLock(ctx, false, func() (err error) {
		a, err = s.snapshot(true)
		return err
	})
	if err != nil {
		return BackupInfo{}, fmt.Errorf("back up %s: %w", s.dir, err)
	}
	defer a.wipe()
	a.Created = s.now().UTC().Truncate(time.Millisecond)
	a.Store = s.dir
	if abs, err := filepath.Abs(s.dir); err == nil {
		a.Store = abs
	}
	plain, err := json.Marshal(a)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("back up %s: encode: %w", s.dir, err)
	}
	defer clear(plain)
	aw, err := age.Encrypt(w, recipients...)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("back up %s: encrypt: %w", s.dir, err)
	}
	if _, err := aw.Write(plain); err != nil {
		return BackupInfo{}, fmt.Errorf("back up %s: write: %w", s.dir, err)
	}
	if err := aw.Close(); err != nil {
		return BackupInfo{}, fmt.Errorf("back up %s: write: %w", s.dir, err)
	}
	return a.info(), nil
}

// wipe clears the archive's keys from memory.
func (a *archive) wipe() {
	for _, c := range a.Credentials {
		for _, k := range c.Keys {
			clear(k.Key)
		}
	}
}

// snapshot reads every credential's metadata and every admin record (and,
// withKeys, every kept version's key, checked against its fingerprint).
// The caller holds the lock. State is set; Created and Store are not.
func (s *Store) snapshot(withKeys bool) (*archive, error) {
	a := &archive{Format: archiveFormat, Credentials: []archivedCred{}, Admins: []adminFile{}}
	ids, err := s.credentialIDs()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		m, err := s.readMeta(id)
		if err != nil {
			return nil, err
		}
		c := archivedCred{meta: m, Keys: []archivedKey{}}
		for _, v := range m.Versions {
			if v.Destroyed || !withKeys {
				continue
			}
			key, err := s.readKey(id, v)
			if err != nil {
				a.Credentials = append(a.Credentials, c)
				a.wipe()
				return nil, err
			}
			c.Keys = append(c.Keys, archivedKey{Version: v.Version, Key: key})
		}
		a.Credentials = append(a.Credentials, c)
	}
	users, err := s.adminUsers()
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		ad, err := s.readAdmin(u)
		if err != nil {
			return nil, err
		}
		a.Admins = append(a.Admins, adminFile{Admin: ad, Revision: ad.Revision})
	}
	a.State = a.digest()
	return a, nil
}

// readKey decrypts one version's key and checks it against its
// fingerprint.
func (s *Store) readKey(id keystore.ID, v keystore.Version) ([]byte, error) {
	ct, err := readFile(keyFile(s.credDir(id), v.Version))
	if err != nil {
		return nil, fmt.Errorf("%s version %d: %w", id, v.Version, err)
	}
	key, err := s.decrypt(ct)
	if err != nil {
		return nil, fmt.Errorf("%s version %d: %w", id, v.Version, err)
	}
	if keys.Fingerprint(key) != v.Fingerprint {
		clear(key)
		return nil, fmt.Errorf("%s version %d: key does not match its recorded fingerprint", id, v.Version)
	}
	return key, nil
}

// credentialIDs lists the credentials the store keeps: every directory
// under credentials/ that holds a meta.json, sorted. Links are not
// followed; a directory whose name is not a credential is corrupt.
func (s *Store) credentialIDs() ([]keystore.ID, error) {
	root := filepath.Join(s.dir, "credentials")
	var ids []keystore.ID
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return fs.SkipAll
		}
		if err != nil {
			return err
		}
		if d.Name() != "meta.json" || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		id := keystore.ID(filepath.ToSlash(rel))
		if err := id.Validate(); err != nil {
			return fmt.Errorf("file store: %s is not a credential's directory: %w", filepath.Dir(p), err)
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// adminUsers lists the users with a record, sorted.
func (s *Store) adminUsers() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "admins"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	var users []string
	for _, e := range ents {
		if user, ok := strings.CutSuffix(e.Name(), ".json"); ok && policies.ValidateUser(user) == nil {
			users = append(users, user)
		}
	}
	sort.Strings(users)
	return users, nil
}

// digest is the state of the store's records: SHA-256 over every
// credential's version list and every admin record with its revision, in
// a canonical encoding (not the files' bytes), keys excluded.
func (a *archive) digest() string {
	type state struct {
		Credentials []meta      `json:"credentials"`
		Admins      []adminFile `json:"admins"`
	}
	st := state{Credentials: []meta{}, Admins: a.Admins}
	for _, c := range a.Credentials {
		st.Credentials = append(st.Credentials, c.meta)
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(st); err != nil {
		return "unencodable: " + err.Error()
	}
	sum := sha256.Sum256(buf.Bytes())
	return "sha256:" + hex.EncodeToString(sum[:])
}
