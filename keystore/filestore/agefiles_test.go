package filestore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"filippo.io/age"
)

// TestWriteArchive: a new file is 0600 whatever the umask; an existing
// name — a file, a link, a dangling link — is never written through or
// replaced.
func TestWriteArchive(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	p := filepath.Join(dir, "a.age")
	if err := WriteArchive(p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v under umask 0", fi.Mode().Perm())
	}
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o644)
	os.Symlink(target, filepath.Join(dir, "link"))
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling"))
	for _, name := range []string{"a.age", "link", "dangling"} {
		if err := WriteArchive(filepath.Join(dir, name), []byte("new")); !errors.Is(err, fs.ErrExist) {
			t.Errorf("%s: %v, want an error wrapping fs.ErrExist", name, err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Error("written through a link")
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a dangling link's target was created")
	}
}

// TestParseRecipients: public keys pass; a secret key, given or in the
// file, is refused and never repeated.
func TestParseRecipients(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	secret := id.String()
	file := filepath.Join(t.TempDir(), "r.txt")
	os.WriteFile(file, []byte("# keys\n"+id.Recipient().String()+"\n"), 0o600)
	rs, err := ParseRecipients([]string{id.Recipient().String()}, file)
	if err != nil || len(rs) != 2 {
		t.Fatalf("ParseRecipients: %d, %v", len(rs), err)
	}
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte(secret+"\n"), 0o600)
	for _, tc := range []struct {
		keys []string
		file string
	}{{[]string{secret}, ""}, {[]string{strings.ToLower(secret)}, ""}, {nil, bad}, {[]string{"age1" + secret[20:]}, ""}} {
		_, err := ParseRecipients(tc.keys, tc.file)
		if err == nil || strings.Contains(strings.ToUpper(err.Error()), secret[20:40]) {
			t.Errorf("ParseRecipients(%d keys, %q): %v", len(tc.keys), tc.file, err)
		}
	}
}
