package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/internal/testroot"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/filestore"
)

// backupJSON is what backup -o json says of the archive.
type backupJSON struct {
	File        string `json:"file"`
	State       string `json:"state"`
	Credentials []struct {
		ID          string `json:"id"`
		Version     int    `json:"version"`
		Fingerprint string `json:"fingerprint"`
	} `json:"credentials"`
}

func (b backupJSON) fingerprint(id string) string {
	for _, c := range b.Credentials {
		if c.ID == id {
			return c.Fingerprint
		}
	}
	return ""
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, stderr := cli(t, false, args...)
	if code != 0 {
		t.Fatalf("pcmkeys %s: exit %d: %s\n%s", strings.Join(args, " "), code, stderr, out)
	}
	return out
}

// hostFingerprints are the fingerprints of the keys the quickstart's host
// holds: the node's CIB key and authkey, and alice's client key.
func hostFingerprints(t *testing.T, root *testroot.Root) (cib, authkey, alice string) {
	t.Helper()
	entries, err := credfile.ParseCIBCredentials(root.Read(t, "etc/pacemaker/cib-credentials"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("cib-credentials: %v (%d entries)", err, len(entries))
	}
	client, err := credfile.ParseClientKey(root.Read(t, "home/alice/.pcmkeys/quickstart.key"))
	if err != nil {
		t.Fatal(err)
	}
	return keys.Fingerprint(entries[0].Key), keys.Fingerprint(root.Read(t, "etc/pacemaker/authkey")), keys.Fingerprint(client)
}

// storeKeys returns every current key in the quickstart's store, in each
// form a file could hold it.
func storeKeys(t *testing.T, cfg string) [][]byte {
	t.Helper()
	dir := filepath.Join(filepath.Dir(cfg), "store")
	st, err := filestore.Open(dir, dir+".agekey", filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out [][]byte
	for _, id := range []keystore.ID{keystore.AuthkeyID, keystore.CIB("hacluster"), keystore.Password("hacluster")} {
		c, err := st.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		k := c.Key.Bytes()
		out = append(out, k, []byte(hex.EncodeToString(k)), []byte(base64.StdEncoding.EncodeToString(k)))
		if id.Kind() == keys.Password {
			out = append(out, c.Key.PasswordText())
		}
	}
	return out
}

// storeTree lists every file of the store and its content's digest, the
// lock excepted: what "nothing changed" compares.
func storeTree(t *testing.T, cfg string) string {
	t.Helper()
	var b strings.Builder
	dir := filepath.Join(filepath.Dir(cfg), "store")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock" || d.Name() == "lock.json" {
			return err
		}
		data, err := os.ReadFile(p)
		fmt.Fprintf(&b, "%s %x\n", p, sha256.Sum256(data))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBackupRestoreQuickstart (issue 13) on the quickstart: init and
// onboard, back up (0600, no key in the clear), rotate; a restore is
// refused because the store changed, a damaged archive and one for
// someone else are refused, each changing nothing; forced, the backup is
// restored, and push brings the host back to the backup's keys.
func TestBackupRestoreQuickstart(t *testing.T) {
	cfg, root := quickstart(t, "shared")
	mustCLI(t, "--config", cfg, "init")
	mustCLI(t, "--config", cfg, "onboard", "alice", "--client", "localhost")
	dir := t.TempDir()
	archive := filepath.Join(dir, "backup.age")
	var b backupJSON
	if err := json.Unmarshal([]byte(mustCLI(t, "--config", cfg, "-o", "json", "backup", archive)), &b); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(archive)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive: %v, mode %v", err, fi.Mode())
	}
	data := mustRead(t, archive)
	for _, k := range storeKeys(t, cfg) {
		if bytes.Contains(data, k) {
			t.Fatal("the archive holds a key in the clear")
		}
	}
	cib, auth, alice := hostFingerprints(t, root)
	if b.fingerprint("cib/hacluster") != cib || b.fingerprint("authkey") != auth || alice != cib {
		t.Fatalf("the backup's fingerprints %+v are not the host's keys (%s %s %s)", b.Credentials, cib, auth, alice)
	}
	if code, _, stderr := cli(t, false, "--config", cfg, "backup", archive); code != 2 || !strings.Contains(stderr, "exists") {
		t.Errorf("backup over an existing file: exit %d: %s", code, stderr)
	}
	if !bytes.Equal(mustRead(t, archive), data) {
		t.Error("a refused backup changed the existing file")
	}

	mustCLI(t, "--config", cfg, "rotate", "--cib")
	if now, _, _ := hostFingerprints(t, root); now == cib {
		t.Fatal("rotate left the host's CIB key as it was")
	}
	rotated := storeTree(t, cfg)

	damaged := filepath.Join(dir, "damaged.age")
	bad := bytes.Clone(data)
	bad[len(bad)-10] ^= 0x40
	os.WriteFile(damaged, bad, 0o600)
	other, _ := age.GenerateX25519Identity()
	foreign := filepath.Join(dir, "foreign.age")
	mustCLI(t, "--config", cfg, "backup", foreign, "--recipient", other.Recipient().String())
	for _, tc := range []struct {
		name, file, want string
	}{
		{"changed since the backup", archive, "the store changed since the backup: cib/hacluster: the store is at version 2"},
		{"damaged", damaged, "damaged"},
		{"wrong recipient", foreign, "not encrypted to this store's identity"},
		{"missing", filepath.Join(dir, "nope.age"), "no such file"},
	} {
		args := []string{"--config", cfg, "restore", tc.file}
		if tc.file != archive {
			args = append(args, "--force")
		}
		code, out, stderr := cli(t, false, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("%s: restore exit %d, stdout %q, stderr %q; want exit 2 saying %q", tc.name, code, out, stderr, tc.want)
		}
		if storeTree(t, cfg) != rotated {
			t.Fatalf("%s: a refused restore changed the store", tc.name)
		}
	}

	// Another run holds the cluster's lock: exit 5, naming it, nothing
	// changed.
	storeDir := filepath.Join(filepath.Dir(cfg), "store")
	st, err := filestore.Open(storeDir, storeDir+".agekey", filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lease, err := st.Lock(context.Background(), "the scheduled job", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, false, "--config", cfg, "restore", archive, "--force"); code != 5 || !strings.Contains(stderr, "the scheduled job") {
		t.Errorf("restore while another run holds the lock: exit %d: %s", code, stderr)
	}
	if storeTree(t, cfg) != rotated {
		t.Fatal("a restore refused the lock changed the store")
	}
	if err := st.Unlock(context.Background(), lease); err != nil {
		t.Fatal(err)
	}

	out := mustCLI(t, "--config", cfg, "restore", archive, "--force")
	for _, want := range []string{"restored the store", "the store had changed since the backup (--force)", "cib/hacluster: the store is at version 2", "next: pcmkeys push"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore --force says nothing of %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "the authkey is not the one") {
		t.Errorf("restore warns of an authkey change, and the authkey did not change:\n%s", out)
	}
	mustCLI(t, "--config", cfg, "push")
	if c, a, al := hostFingerprints(t, root); c != b.fingerprint("cib/hacluster") || a != b.fingerprint("authkey") || al != c {
		t.Errorf("after restore and push the host holds %s %s %s, want the backup's %+v", c, a, al, b.Credentials)
	}
	// The restored store is the backup's state: restoring it again needs
	// no force.
	if out := mustCLI(t, "--config", cfg, "restore", archive); !strings.Contains(out, "the store was as the backup left it") {
		t.Errorf("second restore:\n%s", out)
	}
	// Both are audited, naming the archive.
	trail := string(mustRead(t, filepath.Join(filepath.Dir(cfg), "audit.jsonl")))
	for _, want := range []string{`"action":"backup","args":["` + archive, `"action":"restore","args":["` + archive} {
		if !strings.Contains(trail, want) {
			t.Errorf("the audit trail lacks %s", want)
		}
	}
}

// TestRestoreReadmitsRevoked: restoring a backup made before a revocation
// gives the revoked admin's key access again, and restore says so; revoke
// run again takes it away. (docs/backup.md explains why.)
func TestRestoreReadmitsRevoked(t *testing.T) {
	cfg, root := quickstart(t, "shared")
	mustCLI(t, "--config", cfg, "init")
	mustCLI(t, "--config", cfg, "onboard", "alice", "--client", "localhost")
	mustCLI(t, "--config", cfg, "onboard", "bob", "--client", "localhost")
	bobKey, err := credfile.ParseClientKey(root.Read(t, "home/bob/.pcmkeys/quickstart.key"))
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "before-revoke.age")
	mustCLI(t, "--config", cfg, "backup", archive)
	mustCLI(t, "--config", cfg, "revoke", "bob")
	nodeKey := func() keys.Secret {
		entries, err := credfile.ParseCIBCredentials(root.Read(t, "etc/pacemaker/cib-credentials"))
		if err != nil || len(entries) != 1 {
			t.Fatalf("cib-credentials: %v", err)
		}
		return entries[0].Key
	}
	if nodeKey().Equal(bobKey) {
		t.Fatal("revoke left bob's key on the node")
	}
	out := mustCLI(t, "--config", cfg, "restore", archive, "--force")
	if !strings.Contains(out, "bob was revoked after the backup and has access again") || !strings.Contains(out, "pcmkeys revoke bob") {
		t.Errorf("restore does not say bob is readmitted:\n%s", out)
	}
	// The store is lost: made again from the archive, there is nothing to
	// compare with, and the audit trail says bob was revoked since.
	if err := os.RemoveAll(filepath.Join(filepath.Dir(cfg), "store")); err != nil {
		t.Fatal(err)
	}
	out = mustCLI(t, "--config", cfg, "restore", archive)
	if !strings.Contains(out, "made the store") || !strings.Contains(out, "bob was revoked after the backup and has access again") {
		t.Errorf("restore into a lost store does not say bob is readmitted:\n%s", out)
	}
	mustCLI(t, "--config", cfg, "push")
	if !nodeKey().Equal(bobKey) {
		t.Fatal("after restore and push the node should accept the key bob held at the backup (this test documents that)")
	}
	mustCLI(t, "--config", cfg, "revoke", "bob")
	if nodeKey().Equal(bobKey) {
		t.Error("revoke after the restore left bob's key on the node")
	}
}
