package distribute

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/internal/testroot"
)

// lab is a host root with its own passwd and group files.
type lab struct {
	*testroot.Root
	root                string
	hacluster, haclient int
	alice, bob          int
}

func newLab(t *testing.T) *lab {
	t.Helper()
	r := testroot.New(t)
	return &lab{Root: r, root: r.Dir, hacluster: r.Hacluster, haclient: r.Haclient, alice: r.Alice, bob: r.Bob}
}

func (l *lab) host(t *testing.T) *Local {
	t.Helper()
	h, err := NewLocal("lab", l.root)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (l *lab) path(p string) string { return filepath.Join(l.root, p) }

func requireRoot(t *testing.T) { testroot.RequireRoot(t) }

// checkFile asserts a file's owner, group, mode and exact content.
func checkFile(t *testing.T, p string, uid, gid int, mode fs.FileMode, content []byte) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("%s is not a regular file", p)
	}
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
	}
	if got := fs.FileMode(st.Mode & 0o7777); got != mode {
		t.Errorf("%s mode %04o, want %04o", p, got, mode)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Errorf("%s content differs (%d bytes, want %d)", p, len(got), len(content))
	}
}

func checkDir(t *testing.T, p string, uid, gid int, mode fs.FileMode) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	if int(st.Uid) != uid || int(st.Gid) != gid || fs.FileMode(st.Mode&0o7777) != mode {
		t.Errorf("dir %s is %d:%d %04o, want %d:%d %04o", p, st.Uid, st.Gid, st.Mode&0o7777, uid, gid, mode)
	}
}

// noTempFiles asserts that dir holds nothing but the names given.
func noTempFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %v, want %v", dir, names, want)
	}
}

func serverFile(content string) File {
	return File{Path: "/etc/pacemaker/cib-credentials", Content: []byte(content), Owner: "hacluster", Group: "haclient", Mode: 0o600}
}

func TestWriteServerFileCreatesSafeDirectories(t *testing.T) {
	for _, umask := range []int{0, 0o022, 0o077, 0o277} {
		t.Run(fmt.Sprintf("umask%04o", umask), func(t *testing.T) {
			l := newLab(t)
			old := syscall.Umask(umask)
			defer syscall.Umask(old)
			h := l.host(t)
			content := "hacluster:" + strings.Repeat("ab", 32) + "\n"
			if err := Write(context.Background(), h, serverFile(content)); err != nil {
				t.Fatal(err)
			}
			checkFile(t, l.path("etc/pacemaker/cib-credentials"), l.hacluster, l.haclient, 0o600, []byte(content))
			checkDir(t, l.path("etc/pacemaker"), os.Geteuid(), l.haclient, 0o750)
			noTempFiles(t, l.path("etc/pacemaker"), "cib-credentials")
		})
	}
}
