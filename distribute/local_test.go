package distribute

import (
	"bytes"
	"context"
	"errors"
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

func mustMkdir(t *testing.T, p string, m fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, m); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, content string, m fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), m); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

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

func TestWriteReplacesLooserExistingFile(t *testing.T) {
	// The renameio trap: WriteFile would keep an existing file's 0644.
	l := newLab(t)
	mustMkdir(t, l.path("etc/pacemaker"), 0o750)
	mustWrite(t, l.path("etc/pacemaker/authkey"), "old", 0o644)
	f := File{Path: "/etc/pacemaker/authkey", Content: bytes.Repeat([]byte{0, '\n', 0xff}, 100), Owner: "hacluster", Group: "haclient", Mode: 0o600}
	if err := Write(context.Background(), l.host(t), f); err != nil {
		t.Fatal(err)
	}
	checkFile(t, l.path("etc/pacemaker/authkey"), l.hacluster, l.haclient, 0o600, f.Content)
}

func TestWriteClientFileInHome(t *testing.T) {
	l := newLab(t)
	f := File{Path: "~/.pcmkeys/prod.key", Content: []byte(strings.Repeat("0f", 32)), Owner: "alice", Mode: 0o600}
	if err := Write(context.Background(), l.host(t), f); err != nil {
		t.Fatal(err)
	}
	checkFile(t, l.path("home/alice/.pcmkeys/prod.key"), l.alice, l.alice, 0o600, f.Content)
	checkDir(t, l.path("home/alice/.pcmkeys"), l.alice, l.alice, 0o700)
}

func TestStageAbortLeavesTargetAndNoTempFile(t *testing.T) {
	l := newLab(t)
	h := l.host(t)
	ctx := context.Background()
	if err := Write(ctx, h, serverFile("hacluster:"+strings.Repeat("11", 32)+"\n")); err != nil {
		t.Fatal(err)
	}
	s, err := h.Stage(ctx, serverFile("hacluster:"+strings.Repeat("22", 32)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	// While staged, the target is still the old file.
	checkFile(t, l.path("etc/pacemaker/cib-credentials"), l.hacluster, l.haclient, 0o600, []byte("hacluster:"+strings.Repeat("11", 32)+"\n"))
	if err := s.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	noTempFiles(t, l.path("etc/pacemaker"), "cib-credentials")
	checkFile(t, l.path("etc/pacemaker/cib-credentials"), l.hacluster, l.haclient, 0o600, []byte("hacluster:"+strings.Repeat("11", 32)+"\n"))
}

func TestRefusals(t *testing.T) {
	good := serverFile("hacluster:" + strings.Repeat("ab", 32) + "\n")
	cases := []struct {
		name    string
		setup   func(t *testing.T, l *lab)
		file    func() File
		want    error
		msg     string
		root    bool
		touched string // a path that must keep its content
	}{
		{name: "symlinked target", setup: func(t *testing.T, l *lab) {
			mustMkdir(t, l.path("etc/pacemaker"), 0o750)
			mustWrite(t, l.path("victim"), "victim", 0o644)
			if err := os.Symlink(l.path("victim"), l.path("etc/pacemaker/cib-credentials")); err != nil {
				t.Fatal(err)
			}
		}, want: ErrUnsafe, msg: "is a symbolic link", touched: "victim"},
		{name: "symlinked parent", setup: func(t *testing.T, l *lab) {
			mustMkdir(t, l.path("elsewhere"), 0o750)
			if err := os.Symlink(l.path("elsewhere"), l.path("etc/pacemaker")); err != nil {
				t.Fatal(err)
			}
		}, want: ErrUnsafe, msg: "directory /etc/pacemaker is a symbolic link"},
		{name: "directory at target", setup: func(t *testing.T, l *lab) {
			mustMkdir(t, l.path("etc/pacemaker/cib-credentials"), 0o700)
		}, want: ErrUnsafe, msg: "not a regular file (a directory)"},
		{name: "fifo at target", setup: func(t *testing.T, l *lab) {
			mustMkdir(t, l.path("etc/pacemaker"), 0o750)
			if err := unix.Mkfifo(l.path("etc/pacemaker/cib-credentials"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: ErrUnsafe, msg: "a FIFO"},
		{name: "directory writable by others", setup: func(t *testing.T, l *lab) {
			mustMkdir(t, l.path("etc/pacemaker"), 0o777)
		}, want: ErrUnsafe, msg: "writable by group or other"},
		{name: "ancestor writable by group", setup: func(t *testing.T, l *lab) {
			mustMkdir(t, l.path("etc"), 0o775)
		}, want: ErrUnsafe, msg: "directory /etc is writable"},
		{name: "directory owned by another user", root: true, setup: func(t *testing.T, l *lab) {
			mustMkdir(t, l.path("etc/pacemaker"), 0o755)
			if err := os.Chown(l.path("etc/pacemaker"), l.bob, l.bob); err != nil {
				t.Fatal(err)
			}
		}, want: ErrUnsafe, msg: "owned by uid 1002"},
		{name: "target owned by another user", root: true, setup: func(t *testing.T, l *lab) {
			mustMkdir(t, l.path("etc/pacemaker"), 0o750)
			mustWrite(t, l.path("etc/pacemaker/cib-credentials"), "planted", 0o600)
			if err := os.Chown(l.path("etc/pacemaker/cib-credentials"), l.bob, l.bob); err != nil {
				t.Fatal(err)
			}
		}, want: ErrUnsafe, msg: "owned by uid 1002, neither root nor hacluster"},
		{name: "parent is a file", setup: func(t *testing.T, l *lab) {
			mustWrite(t, l.path("etc/pacemaker"), "x", 0o600)
		}, want: ErrUnsafe, msg: "is not a directory"},
		{name: "mode for group", file: func() File { f := good; f.Mode = 0o640; return f }, msg: "gives group or other access"},
		{name: "relative path", file: func() File { f := good; f.Path = "etc/pacemaker/x"; return f }, msg: "is not absolute"},
		{name: "dot-dot path", file: func() File { f := good; f.Path = "/etc/pacemaker/../x"; return f }, msg: "'..'"},
		{name: "unknown owner", file: func() File { f := good; f.Owner = "mallory"; return f }, want: ErrUnknownUser},
		{name: "unknown group", file: func() File { f := good; f.Group = "wheelx"; return f }, want: ErrUnknownGroup},
		{name: "home missing", file: func() File {
			return File{Path: "~/.pcmkeys/k", Content: []byte("00"), Owner: "hacluster", Mode: 0o600}
		}, msg: "home directory /var/lib/pacemaker of hacluster does not exist"},
		{name: "home writable by group", setup: func(t *testing.T, l *lab) {
			if err := os.Chmod(l.path("home/alice"), 0o770); err != nil {
				t.Fatal(err)
			}
		}, file: func() File {
			return File{Path: "~/.pcmkeys/k", Content: []byte("00"), Owner: "alice", Mode: 0o600}
		}, want: ErrUnsafe, msg: "/home/alice is writable"},
		{name: "other user's dir inside home", root: true, setup: func(t *testing.T, l *lab) {
			mustMkdir(t, l.path("home/alice/.pcmkeys"), 0o700)
			if err := os.Chown(l.path("home/alice/.pcmkeys"), l.bob, l.bob); err != nil {
				t.Fatal(err)
			}
		}, file: func() File {
			return File{Path: "~/.pcmkeys/k", Content: []byte("00"), Owner: "alice", Mode: 0o600}
		}, want: ErrUnsafe, msg: "owned by uid 1002"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				requireRoot(t)
			}
			l := newLab(t)
			if tc.setup != nil {
				tc.setup(t, l)
			}
			f := good
			if tc.file != nil {
				f = tc.file()
			}
			before := snapshot(t, l.root)
			err := Write(context.Background(), l.host(t), f)
			if err == nil {
				t.Fatal("write succeeded, want a refusal")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			if after := snapshot(t, l.root); after != before {
				t.Errorf("refused write changed the tree:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// snapshot lists every path under root with its type, mode, owner and size,
// so a test can assert that nothing was written.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %o %d:%d %d\n", strings.TrimPrefix(p, root), st.Mode, st.Uid, st.Gid, st.Size)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRemoveAndInspect(t *testing.T) {
	l := newLab(t)
	h := l.host(t)
	ctx := context.Background()
	f := File{Path: "~/.pcmkeys/prod.key", Content: []byte(strings.Repeat("0f", 32)), Owner: "alice", Mode: 0o600}
	if err := Write(ctx, h, f); err != nil {
		t.Fatal(err)
	}
	st, err := h.Inspect(ctx, f.Path, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exists || !st.Regular || st.Owner != "alice" || st.Mode != 0o600 || st.SHA256 != f.SHA256() || st.Path != "/home/alice/.pcmkeys/prod.key" {
		t.Errorf("inspect = %+v", st)
	}
	if got, err := h.Read(ctx, f.Path, "alice"); err != nil || !bytes.Equal(got, f.Content) {
		t.Errorf("read back: %v", err)
	}
	if err := h.Remove(ctx, f.Path, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(l.path("home/alice/.pcmkeys/prod.key")); !os.IsNotExist(err) {
		t.Errorf("file still there after remove: %v", err)
	}
	if err := h.Remove(ctx, f.Path, "alice"); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}
	st, err = h.Inspect(ctx, f.Path, "alice")
	if err != nil || st.Exists {
		t.Errorf("inspect after remove = %+v, %v", st, err)
	}
	// A link at the path is removed itself; what it points to stays.
	mustWrite(t, l.path("victim"), "victim", 0o600)
	if err := os.Symlink(l.path("victim"), l.path("home/alice/.pcmkeys/prod.key")); err != nil {
		t.Fatal(err)
	}
	st, err = h.Inspect(ctx, f.Path, "alice")
	if err != nil || !st.Symlink || st.SHA256 != "" {
		t.Errorf("inspect of a link = %+v, %v", st, err)
	}
	if _, err := h.Read(ctx, f.Path, "alice"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("read through a link: %v", err)
	}
	if err := h.Remove(ctx, f.Path, "alice"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(l.path("victim")); err != nil || string(b) != "victim" {
		t.Errorf("link target changed: %q %v", b, err)
	}
}

func TestLocalSweep(t *testing.T) {
	l := newLab(t)
	h := l.host(t)
	mustMkdir(t, l.path("etc/pacemaker"), 0o750)
	for _, n := range []string{".authkey123", ".authkey9876543210", ".authkeyx1", "keep", ".cib-credentials42"} {
		mustWrite(t, l.path("etc/pacemaker/"+n), "x", 0o600)
	}
	n, err := h.Sweep(context.Background(), "/etc/pacemaker/authkey", "hacluster")
	if err != nil || n != 2 {
		t.Fatalf("sweep = %d, %v", n, err)
	}
	noTempFiles(t, l.path("etc/pacemaker"), ".authkeyx1", ".cib-credentials42", "keep")
	if err := Write(context.Background(), h, serverFile("hacluster:"+strings.Repeat("ab", 32)+"\n")); err != nil {
		t.Fatal(err)
	}
	noTempFiles(t, l.path("etc/pacemaker"), ".authkeyx1", "cib-credentials", "keep")
}
