package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// fixture is a store holding every kind of record: a PSK with two
// versions, the authkey, a password, a destroyed per-user key, and three
// admins (active, revoked, revoking).
type fixture struct {
	dir   string
	s     *Store
	keys  map[keystore.ID][]keys.Secret // every version's key, oldest first
	plain [][]byte                      // forms of every key a file must not hold
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: filepath.Join(t.TempDir(), "store"), keys: map[keystore.ID][]keys.Secret{}}
	f.s = open(t, f.dir)
	f.put(t, keystore.CIB("hacluster"), keys.PSK, 32)
	f.put(t, keystore.CIB("hacluster"), keys.PSK, 32)
	f.put(t, keystore.AuthkeyID, keys.Authkey, 4096)
	f.put(t, keystore.Password("hacluster"), keys.Password, 24)
	f.put(t, keystore.CIB("bob"), keys.PSK, 32)
	ctx := context.Background()
	if err := f.s.Destroy(ctx, keystore.CIB("bob"), 1); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, a := range []keystore.Admin{
		{User: "alice", Identity: "hacluster", Clients: []keystore.Client{{Host: "ws1", KeyFile: "/home/alice/.pcmkeys/c.key", EnvFile: "/home/alice/.pcmkeys/c.env"}}, Onboarded: now},
		{User: "bob", Identity: "bob", Onboarded: now, Revoked: now, Finished: now},
		{User: "carol", Identity: "hacluster", Onboarded: now, Revoked: now, CutVersion: 2},
	} {
		if _, err := f.s.PutAdmin(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) put(t *testing.T, id keystore.ID, kind keys.Kind, n int) {
	t.Helper()
	k, err := keys.Generate(kind, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Put(context.Background(), id, k, keystore.PutOptions{CAS: len(f.keys[id]), CreatedBy: "test", Holders: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	f.keys[id] = append(f.keys[id], k)
	f.plain = append(f.plain, k, []byte(hex.EncodeToString(k)), []byte(base64.StdEncoding.EncodeToString(k)))
}

func (f *fixture) backup(t *testing.T, recipients ...age.Recipient) ([]byte, BackupInfo) {
	t.Helper()
	var buf bytes.Buffer
	info, err := f.s.Backup(context.Background(), &buf, recipients...)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), info
}

// tree is every file under dir with a digest of its content, the lock's
// flock file excepted: what "nothing changed" compares.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %x\n", rel, sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// state is what the store answers through its interface: every
// credential's history and current key, and every admin record.
func state(t *testing.T, s *Store) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	ids, err := s.credentialIDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		h, err := s.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := s.Get(ctx, id)
		fmt.Fprintf(&b, "%s %+v key %x err %v\n", id, h, sha256.Sum256(cur.Key), errors.Is(err, keystore.ErrDestroyed))
	}
	admins, err := s.ListAdmins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(admins)
	for _, a := range admins {
		fmt.Fprintf(&b, "%s rev %d\n", a.User, a.Revision)
	}
	return b.String() + string(out)
}

// TestBackupHoldsEverythingEncrypted: the archive decrypts only with the
// store's identity, names every credential at its current version, and
// holds no key in any form a grep would find.
func TestBackupHoldsEverythingEncrypted(t *testing.T) {
	f := newFixture(t)
	data, info := f.backup(t)
	for _, p := range f.plain {
		if bytes.Contains(data, p) {
			t.Fatal("the archive holds a key in the clear")
		}
	}
	if !bytes.HasPrefix(data, []byte("age-encryption.org/v1\n")) {
		t.Errorf("the archive is not an age file: %q", data[:min(40, len(data))])
	}
	var got []string
	for _, c := range info.Credentials {
		got = append(got, fmt.Sprintf("%s v%d/%d destroyed=%v", c.ID, c.Version, c.Versions, c.Destroyed))
		if !c.Destroyed && c.Fingerprint != keys.Fingerprint(f.keys[c.ID][c.Version-1]) {
			t.Errorf("%s: fingerprint %s is not its current key's", c.ID, c.Fingerprint)
		}
	}
	want := []string{"authkey v1/1 destroyed=false", "cib/bob v1/1 destroyed=true", "cib/hacluster v2/2 destroyed=false", "password/hacluster v1/1 destroyed=false"}
	if !slices.Equal(got, want) {
		t.Errorf("archive credentials:\n%v\nwant\n%v", got, want)
	}
	var admins []string
	for _, a := range info.Admins {
		admins = append(admins, a.User+" "+a.State)
	}
	if want := []string{"alice active", "bob revoked", "carol revoking"}; !slices.Equal(admins, want) {
		t.Errorf("archive admins %v, want %v", admins, want)
	}
	other, _ := age.GenerateX25519Identity()
	if _, err := age.Decrypt(bytes.NewReader(data), other); err == nil {
		t.Error("another identity decrypts the archive")
	}
	if _, err := age.Decrypt(bytes.NewReader(data), f.s.identity); err != nil {
		t.Errorf("the store's identity does not decrypt the archive: %v", err)
	}
}

// TestRestoreCheckAndSet: a restore over a store that changed since the
// backup is refused and changes nothing; forced, it brings back every
// record and key as they were (destroyed keys stay destroyed), names the
// admin it readmits and the one it drops, and keeps the caller's lock.
// Restoring the same archive again needs no force.
func TestRestoreCheckAndSet(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	before := state(t, f.s)
	data, info := f.backup(t)

	f.put(t, keystore.CIB("hacluster"), keys.PSK, 32) // v3
	f.put(t, keystore.AuthkeyID, keys.Authkey, 4096)  // v2
	alice, _ := f.s.GetAdmin(ctx, "alice")
	alice.Revoked = time.Now()
	if _, err := f.s.PutAdmin(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.PutAdmin(ctx, keystore.Admin{User: "dave", Identity: "hacluster"}); err != nil {
		t.Fatal(err)
	}
	changed := state(t, f.s)
	lease, err := f.s.Lock(ctx, "restore test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	files := tree(t, f.dir)
	res, err := f.s.Restore(ctx, bytes.NewReader(data), RestoreOptions{Holder: "restore test"})
	if !errors.Is(err, ErrChanged) || !res.Changed {
		t.Fatalf("restore over a changed store: %v (changed %v)", err, res.Changed)
	}
	if tree(t, f.dir) != files || state(t, f.s) != changed {
		t.Fatal("a refused restore changed the store")
	}
	diffs := strings.Join(res.Differences, "\n")
	for _, want := range []string{"cib/hacluster: the store is at version 3", "admin alice: the store has revision 2 (revoking), the backup revision 1 (active)", "admin dave: onboarded after the backup"} {
		if !strings.Contains(diffs, want) {
			t.Errorf("the differences do not say %q:\n%s", want, diffs)
		}
	}

	res, err = f.s.Restore(ctx, bytes.NewReader(data), RestoreOptions{Holder: "restore test", Force: true})
	if err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	if got := state(t, f.s); got != before {
		t.Errorf("restored store:\n%s\nwant, as backed up:\n%s", got, before)
	}
	if !slices.Equal(res.Readmitted, []string{"alice"}) || !slices.Equal(res.Dropped, []string{"dave"}) || res.Archive.State != info.State || !res.AuthkeyChanged {
		t.Errorf("restore result: readmitted %v dropped %v state %s authkey changed %v", res.Readmitted, res.Dropped, res.Archive.State, res.AuthkeyChanged)
	}
	if kept, _ := filepath.Glob(filepath.Join(f.dir, "credentials", "cib", "bob", "*.age")); len(kept) != 0 {
		t.Errorf("the destroyed key came back: %v", kept)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.dir), ".store.restore-*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := f.s.Lock(ctx, "someone else", time.Minute); !errors.Is(err, keystore.ErrLocked) {
		t.Errorf("the restored store lost the restore's lock: %v", err)
	}
	if err := f.s.Unlock(ctx, lease); err != nil {
		t.Errorf("unlock after the restore: %v", err)
	}
	lease, _ = f.s.Lock(ctx, "again", time.Minute)
	if res, err := f.s.Restore(ctx, bytes.NewReader(data), RestoreOptions{Holder: "again"}); err != nil || res.Changed || res.AuthkeyChanged || len(res.Differences) != 0 {
		t.Errorf("restoring the archive the store already matches: %v %+v", err, res)
	}
	f.s.Unlock(ctx, lease)
}

// TestRestoreRefusals: an archive that is damaged, for someone else, not
// an archive, or crafted inconsistent is refused with a message saying
// which, and without the lock a restore is refused too; the store is
// never touched.
func TestRestoreRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	good, _ := f.backup(t)
	other, _ := age.GenerateX25519Identity()
	foreign, _ := f.backup(t, other.Recipient())
	// An archive encrypted to the store (anyone can: the recipient is
	// public) whose key does not match its fingerprint.
	dr, _ := age.Decrypt(bytes.NewReader(good), f.s.identity)
	var doc archive
	if err := json.NewDecoder(dr).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	doc.Credentials[0].Keys[0].Key[0] ^= 1
	crafted := encryptTo(t, f.s.Recipient(), doc)
	doc.Credentials[0].Keys[0].Key[0] ^= 1
	doc.State = "sha256:00"
	wrongState := encryptTo(t, f.s.Recipient(), doc)

	flip := bytes.Clone(good)
	flip[len(flip)-20] ^= 1
	cases := []struct {
		name, msg string
		data      []byte
		holder    string
	}{
		{"damaged payload", "damaged", flip, "t"},
		{"truncated", "damaged", good[:len(good)-30], "t"},
		{"header only", "damaged", good[:bytes.Index(good, []byte("\n---"))+48], "t"},
		{"wrong recipient", "not encrypted to this store's identity", foreign, "t"},
		{"not age", "not an age-encrypted pcmkeys backup", []byte("hello\n"), "t"},
		{"empty", "not an age-encrypted pcmkeys backup", nil, "t"},
		{"not an archive", "not a pcmkeys file store backup", encryptTo(t, f.s.Recipient(), map[string]string{"format": "tar"}), "t"},
		{"not json", "does not parse", encryptRaw(t, f.s.Recipient(), []byte("{\"format\": tru")), "t"},
		{"key against its fingerprint", "authkey version 1: the key does not match its recorded fingerprint", crafted, "t"},
		{"state", "do not match the state it states", wrongState, "t"},
		{"no lock", "does not hold it", good, ""},
	}
	files := tree(t, f.dir)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lease, err := f.s.Lock(ctx, "t", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			defer f.s.Unlock(ctx, lease)
			_, err = f.s.Restore(ctx, bytes.NewReader(tc.data), RestoreOptions{Holder: tc.holder, Force: true})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("restore: %v, want an error saying %q", err, tc.msg)
			}
			if tc.holder != "" && !errors.Is(err, ErrBadArchive) {
				t.Errorf("%v does not wrap ErrBadArchive", err)
			}
			for _, p := range f.plain {
				if strings.Contains(err.Error(), string(p)) {
					t.Fatal("the error holds a key")
				}
			}
		})
	}
	if got := tree(t, f.dir); !sameBut(got, files, "lock.json") {
		t.Errorf("refused restores changed the store:\n%s\nwas\n%s", got, files)
	}
}

func sameBut(a, b, skip string) bool {
	drop := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, skip+" ") {
				out = append(out, l)
			}
		}
		return out
	}
	return slices.Equal(drop(a), drop(b))
}

func encryptTo(t *testing.T, r age.Recipient, v any) []byte {
	t.Helper()
	plain, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return encryptRaw(t, r, plain)
}

func encryptRaw(t *testing.T, r age.Recipient, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRestoreNewAfterLoss: the store and its identity are lost; the
// archive, made to an offline recipient, makes the store again under a new
// identity, with every key readable; an existing directory is refused.
func TestRestoreNewAfterLoss(t *testing.T) {
	f := newFixture(t)
	offline, _ := age.GenerateX25519Identity()
	data, _ := f.backup(t, offline.Recipient())
	before := state(t, f.s)
	if err := os.RemoveAll(f.dir); err != nil {
		t.Fatal(err)
	}
	os.Remove(f.dir + ".agekey")
	if _, err := RestoreNew(f.dir, f.dir+".agekey", bytes.NewReader(data), RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "--identity-file") {
		t.Errorf("restore with no identity at all: %v", err)
	}
	res, err := RestoreNew(f.dir, f.dir+".agekey", bytes.NewReader(data), RestoreOptions{Identities: []age.Identity{offline}})
	if err != nil || !res.Created {
		t.Fatalf("restore into a lost store: %v", err)
	}
	s, err := Open(f.dir, f.dir+".agekey", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.identity.String() == f.s.identity.String() {
		t.Error("the lost identity came back from nowhere")
	}
	if got := state(t, s); got != before {
		t.Errorf("restored store:\n%s\nwant\n%s", got, before)
	}
	if _, err := RestoreNew(f.dir, f.dir+".agekey", bytes.NewReader(data), RestoreOptions{Identities: []age.Identity{offline}}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("RestoreNew over an existing store: %v", err)
	}
}
