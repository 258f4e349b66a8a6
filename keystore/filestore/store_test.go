package filestore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/storetest"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, dir+".agekey", Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) keystore.Store {
		return open(t, filepath.Join(t.TempDir(), "store"))
	})
}

func TestModesAndNoPlaintext(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := open(t, dir)
	ctx := context.Background()
	psk, _ := keys.Generate(keys.PSK, 32)
	auth, _ := keys.Generate(keys.Authkey, 4096)
	if _, err := s.Put(ctx, keystore.CIB("hacluster"), psk, keystore.PutOptions{CreatedBy: "root"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, keystore.AuthkeyID, auth, keystore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutAdmin(ctx, keystore.Admin{User: "alice", Identity: "hacluster"}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("store directory mode %o", fi.Mode().Perm())
	}
	forms := [][]byte{psk, auth[:64], []byte(hex.EncodeToString(psk)), []byte(base64.StdEncoding.EncodeToString(psk)), []byte(hex.EncodeToString(auth[:64]))}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %o", p, info.Mode().Perm())
		}
		data, _ := os.ReadFile(p)
		for _, f := range forms {
			if bytes.Contains(data, f) {
				t.Errorf("%s holds key material in the clear", p)
			}
		}
		return nil
	})
}

func TestOpenRefusals(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		msg   string
	}{
		{"store readable by others", func(t *testing.T, dir string) { os.Chmod(dir, 0o755) }, "gives group or other access"},
		{"identity readable by others", func(t *testing.T, dir string) { os.Chmod(dir+".agekey", 0o644) }, "gives group or other access"},
		{"identity is a link", func(t *testing.T, dir string) {
			os.Rename(dir+".agekey", dir+".real")
			os.Symlink(dir+".real", dir+".agekey")
		}, "links are not followed"},
		{"identity missing", func(t *testing.T, dir string) { os.Remove(dir + ".agekey") }, "no such file"},
		{"store is a link", func(t *testing.T, dir string) {
			os.Rename(dir, dir+".real")
			os.Symlink(dir+".real", dir)
		}, "is a symbolic link"},
		{"identity garbage", func(t *testing.T, dir string) { os.WriteFile(dir+".agekey", []byte("nope\n"), 0o600) }, "identity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			open(t, dir)
			tc.setup(t, dir)
			_, err := Open(dir, dir+".agekey", Options{})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Open = %v, want an error saying %q", err, tc.msg)
			}
		})
	}
	if _, err := Open(filepath.Join(t.TempDir(), "absent"), "x", Options{}); !errors.Is(err, ErrNoStore) {
		t.Errorf("Open of a missing store without Create: %v", err)
	}
}

// TestTwoProcesses runs two pcmkeys-like processes that each increment a
// credential 15 times by read-then-check-and-set, retrying on conflict. The
// lock and check-and-set must lose no update: 30 new versions in all.
func TestTwoProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := open(t, dir)
	k, _ := keys.Generate(keys.PSK, 32)
	if _, err := s.Put(context.Background(), keystore.CIB("hacluster"), k, keystore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIncrement$")
		cmd.Env = append(os.Environ(), "PCMKEYS_TEST_STORE="+dir, "PCMKEYS_TEST_N=15")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper process: %v", err)
		}
	}
	hist, err := s.History(context.Background(), keystore.CIB("hacluster"))
	if err != nil || len(hist) != 31 {
		t.Fatalf("%d versions after 2×15 increments, want 31 (%v)", len(hist), err)
	}
}

func TestHelperIncrement(t *testing.T) {
	dir := os.Getenv("PCMKEYS_TEST_STORE")
	if dir == "" {
		t.Skip("helper process for TestTwoProcesses")
	}
	n, _ := strconv.Atoi(os.Getenv("PCMKEYS_TEST_N"))
	s, err := Open(dir, dir+".agekey", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for done, tries := 0, 0; done < n; tries++ {
		if tries > 100*n {
			t.Fatal("too many conflicts")
		}
		cur, err := s.Get(ctx, keystore.CIB("hacluster"))
		if err != nil {
			t.Fatal(err)
		}
		k, _ := keys.Generate(keys.PSK, 32)
		_, err = s.Put(ctx, keystore.CIB("hacluster"), k, keystore.PutOptions{CAS: cur.Version.Version, CreatedBy: fmt.Sprint(os.Getpid())})
		if errors.Is(err, keystore.ErrConflict) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		done++
	}
}

// TestDestroyErasesEveryVersion: a destroyed credential's encrypted key
// files are gone, every version's; its metadata stays.
func TestDestroyErasesEveryVersion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := open(t, dir)
	ctx := context.Background()
	id := keystore.CIB("bob")
	for cas := 0; cas < 2; cas++ {
		k, _ := keys.Generate(keys.PSK, 32)
		if _, err := s.Put(ctx, id, k, keystore.PutOptions{CAS: cas}); err != nil {
			t.Fatal(err)
		}
	}
	cred := filepath.Join(dir, "credentials", "cib", "bob")
	if kept, _ := filepath.Glob(filepath.Join(cred, "*.age")); len(kept) != 2 {
		t.Fatalf("before the destroy: %v, want two versions' key files", kept)
	}
	if err := s.Destroy(ctx, id, 2); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(cred, "*.age")); len(left) != 0 {
		t.Errorf("key files left after the destroy: %v", left)
	}
	if _, err := os.Stat(filepath.Join(cred, "meta.json")); err != nil {
		t.Errorf("the metadata went with the keys: %v", err)
	}
}
