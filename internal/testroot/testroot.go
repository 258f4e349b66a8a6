// Package testroot makes host roots for tests: a temporary directory that
// stands for a host's /, with its own etc/passwd and etc/group holding
// hacluster (group haclient), alice and bob, and their home directories.
//
// As root the users get distinct ids (990, 1001, 1002); as any other user
// they all map to that user, so tests that do not need distinct owners
// still run, and those that do call [RequireRoot].
package testroot

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Root is a host root for tests.
type Root struct {
	Dir                 string
	Hacluster, Haclient int
	Alice, Bob          int
}

// New makes a root in a test's temporary directory.
func New(t testing.TB) *Root {
	t.Helper()
	r := &Root{Dir: t.TempDir(), Hacluster: 990, Haclient: 990, Alice: 1001, Bob: 1002}
	if os.Geteuid() != 0 {
		id := os.Geteuid()
		r.Hacluster, r.Haclient, r.Alice, r.Bob = id, os.Getegid(), id, id
	}
	if err := os.Chmod(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(r.Path("etc"), 0o755))
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nhacluster:x:%d:%d::/var/lib/pacemaker:/sbin/nologin\nalice:x:%d:%d::/home/alice:/bin/sh\nbob:x:%d:%d::/home/bob:/bin/sh\n",
		r.Hacluster, r.Haclient, r.Alice, r.Alice, r.Bob, r.Bob)
	group := fmt.Sprintf("root:x:0:\nhaclient:x:%d:\nalice:x:%d:\nbob:x:%d:\n", r.Haclient, r.Alice, r.Bob)
	must(t, os.WriteFile(r.Path("etc/passwd"), []byte(passwd), 0o644))
	must(t, os.WriteFile(r.Path("etc/group"), []byte(group), 0o644))
	for _, u := range []struct {
		name string
		id   int
	}{{"alice", r.Alice}, {"bob", r.Bob}} {
		home := r.Path("home", u.name)
		must(t, os.MkdirAll(home, 0o700))
		must(t, os.Chmod(home, 0o700))
		must(t, os.Chown(home, u.id, u.id))
	}
	return r
}

// Path joins elements under the root.
func (r *Root) Path(elem ...string) string {
	return filepath.Join(append([]string{r.Dir}, elem...)...)
}

// RequireRoot skips a test that needs to give files to other users.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to other users (CI runs as root)")
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// WriteFile writes a file under the root as a host's own tools would:
// directories 0755, then the file with owner and mode.
func (r *Root) WriteFile(t testing.TB, rel string, data []byte, uid, gid int, mode os.FileMode) {
	t.Helper()
	p := r.Path(rel)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, data, mode))
	must(t, os.Chmod(p, mode))
	must(t, os.Lchown(p, uid, gid))
}

// Read returns a file's content under the root.
func (r *Root) Read(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(r.Path(rel))
	must(t, err)
	return b
}
