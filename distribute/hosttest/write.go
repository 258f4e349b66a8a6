package hosttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/distribute"
)

// testWriteServerFile: raw bytes arrive whole, with the owner, group and
// mode asked for, and nothing else is left in the directory; Read gives
// them back and Inspect sees the file as its policy says.
func testWriteServerFile(t *testing.T, e env) {
	f := distribute.File{Path: "/etc/pacemaker/authkey", Content: []byte("raw\x00key\nbytes\xff" + strings.Repeat("x", 4000)), Owner: "hacluster", Group: "haclient", Mode: 0o600}
	if err := distribute.Write(ctx, e.h, f); err != nil {
		t.Fatal(err)
	}
	e.fileIs(t, f, f.Path, e.fx.Hacluster, e.fx.Haclient)
	if got := e.ls(t, "/etc/pacemaker"); got != "authkey\n" {
		t.Errorf("/etc/pacemaker holds %q", got)
	}
	if got, err := e.h.Read(ctx, f.Path, f.Owner); err != nil || !bytes.Equal(got, f.Content) {
		t.Errorf("read back: %d bytes, %v", len(got), err)
	}
	st, err := e.h.Inspect(ctx, f.Path, f.Owner)
	if err != nil {
		t.Fatal(err)
	}
	if finding, detail := distribute.Compare(st, f); finding != distribute.FindingOK {
		t.Errorf("inspect after the write: %s (%s): %+v", finding, detail, st)
	}
	// Writing the same again is a write all the same.
	if err := distribute.Write(ctx, e.h, f); err != nil {
		t.Fatal(err)
	}
	e.fileIs(t, f, f.Path, e.fx.Hacluster, e.fx.Haclient)
}

// testWriteMakesDirectories: missing directories are made, the file's own
// 0750 ADMIN:GROUP, the others 0755.
func testWriteMakesDirectories(t *testing.T, e env) {
	f := withPath(serverFile("deep"), "/etc/pacemaker/a/b/authkey")
	if err := distribute.Write(ctx, e.h, f); err != nil {
		t.Fatal(err)
	}
	got := e.sh(t, `cd "$R/etc/pacemaker"; stat -c '%n %u %a' a; stat -c '%n %u:%g %a' a/b`)
	want := fmt.Sprintf("a %d 755\na/b %d:%d 750\n", e.fx.Admin, e.fx.Admin, e.fx.Haclient)
	if got != want {
		t.Errorf("made directories:\n%swant\n%s", got, want)
	}
	e.fileIs(t, f, f.Path, e.fx.Hacluster, e.fx.Haclient)
}

// testWriteReplacesLooserFile: an existing 0644 file becomes a 0600 one
// (renameio's WriteFile would have kept 0644), and a 0400 policy is kept
// exactly.
func testWriteReplacesLooserFile(t *testing.T, e env) {
	e.sh(t, `f=$R/etc/pacemaker/cib-credentials; echo old > "$f"; chmod 644 "$f"`)
	f := serverFile("hacluster:" + strings.Repeat("ab", 32) + "\n")
	if err := distribute.Write(ctx, e.h, f); err != nil {
		t.Fatal(err)
	}
	e.fileIs(t, f, f.Path, e.fx.Hacluster, e.fx.Haclient)
	f = withMode(f, 0o400)
	if err := distribute.Write(ctx, e.h, f); err != nil {
		t.Fatal(err)
	}
	e.fileIs(t, f, f.Path, e.fx.Hacluster, e.fx.Haclient)
}

// testWriteClientFileInHome: "~/" is the owner's home; the directories
// made there are 0700 and the owner's.
func testWriteClientFileInHome(t *testing.T, e env) {
	f := clientFile("alice", strings.Repeat("0f", 32))
	if err := distribute.Write(ctx, e.h, f); err != nil {
		t.Fatal(err)
	}
	if got, want := e.sh(t, `stat -c '%n %u:%g %a' "$R/home/alice/.pcmkeys" | sed "s|^$R||"`), fmt.Sprintf("/home/alice/.pcmkeys %d:%d 700\n", e.fx.Alice, e.fx.Alice); got != want {
		t.Errorf("made %q, want %q", got, want)
	}
	e.fileIs(t, f, "/home/alice/.pcmkeys/prod.key", e.fx.Alice, e.fx.Alice)
	if got, err := e.h.Read(ctx, f.Path, "alice"); err != nil || !bytes.Equal(got, f.Content) {
		t.Errorf("read back: %q %v", got, err)
	}
	st, err := e.h.Inspect(ctx, f.Path, "alice")
	if finding, _ := distribute.Compare(st, f); err != nil || finding != distribute.FindingOK || st.Path != "/home/alice/.pcmkeys/prod.key" {
		t.Errorf("inspect = %+v, %v", st, err)
	}
}

// testWritePathWithSpaces: directories whose names hold spaces are made
// whole (no stray directory per word), on a server path and in a home.
func testWritePathWithSpaces(t *testing.T, e env) {
	f := withPath(serverFile("spaced"), "/etc/pacemaker/with space/a  b/authkey")
	if err := distribute.Write(ctx, e.h, f); err != nil {
		t.Fatal(err)
	}
	want := "/etc/pacemaker d 750\n/etc/pacemaker/with space d 755\n/etc/pacemaker/with space/a  b d 750\n/etc/pacemaker/with space/a  b/authkey f 600\n"
	if got := e.sh(t, `find "$R/etc/pacemaker" -printf '%p %y %m\n' | sed "s|^$R||" | sort`); got != want {
		t.Errorf("made:\n%swant:\n%s", got, want)
	}
	st, err := e.h.Inspect(ctx, f.Path, f.Owner)
	if err != nil || st.SHA256 != f.SHA256() || st.Path != f.Path {
		t.Errorf("inspect = %+v, %v", st, err)
	}
	c := withPath(clientFile("alice", "c"), "~/my keys/k")
	if err := distribute.Write(ctx, e.h, c); err != nil {
		t.Fatal(err)
	}
	want = "/home/alice d 700\n/home/alice/my keys d 700\n/home/alice/my keys/k f 600\n"
	if got := e.sh(t, `find "$R/home/alice" -printf '%p %y %m\n' | sed "s|^$R||" | sort`); got != want {
		t.Errorf("made in the home:\n%swant:\n%s", got, want)
	}
}

// testWriteOverHardLink: a target that is a hard link to another file is
// replaced; the other file keeps its content.
func testWriteOverHardLink(t *testing.T, e env) {
	e.sh(t, `cd "$R/etc/pacemaker"; printf victim > victim; chmod 600 victim; ln victim cib-credentials`)
	f := serverFile("new")
	if err := distribute.Write(ctx, e.h, f); err != nil {
		t.Fatal(err)
	}
	e.fileIs(t, f, f.Path, e.fx.Hacluster, e.fx.Haclient)
	if got := e.sh(t, `cd "$R/etc/pacemaker"; stat -c '%h %a' victim; cat victim`); got != "1 600\nvictim" {
		t.Errorf("the other name of the file: %q", got)
	}
}

// testWriteOverTooLargeFile: a huge sparse file at the target is replaced
// like any other (it is never read), on a server path and in a home.
func testWriteOverTooLargeFile(t *testing.T, e env) {
	e.sh(t, `f=$R/etc/pacemaker/cib-credentials; truncate -s 4G "$f"; chown $HAC:$HACG "$f"; chmod 600 "$f"
d=$R/home/alice/.pcmkeys; mkdir -m 700 "$d"; truncate -s 4G "$d/prod.key"; chmod 600 "$d/prod.key"; chown -R $ALICE:$ALICE "$d"`)
	f, c := serverFile("small"), clientFile("alice", "small")
	for _, f := range []distribute.File{f, c} {
		if err := distribute.Write(ctx, e.h, f); err != nil {
			t.Fatal(err)
		}
	}
	e.fileIs(t, f, f.Path, e.fx.Hacluster, e.fx.Haclient)
	e.fileIs(t, c, "/home/alice/.pcmkeys/prod.key", e.fx.Alice, e.fx.Alice)
}

// tempOf returns the one temporary file beside f's target, failing if
// the directory holds anything else but the target.
func (e env) tempOf(t *testing.T, dir, base string) string {
	t.Helper()
	var tmp string
	for _, n := range strings.Fields(e.ls(t, dir)) {
		switch {
		case n == base:
		case strings.HasPrefix(n, "."+base) && tmp == "":
			tmp = n
		default:
			t.Errorf("%s holds %s besides %s and one temporary file", dir, n, base)
		}
	}
	if tmp == "" {
		t.Fatalf("no temporary file of %s in %s", base, dir)
	}
	return tmp
}

// testStageThenCommit: while staged, the target is the old file and the
// new content waits beside it, already with its owner and mode; commit
// puts it in place and leaves nothing else; a second commit fails and an
// abort after commit changes nothing.
func testStageThenCommit(t *testing.T, e env) {
	old, f := serverFile("old"), serverFile("new")
	if err := distribute.Write(ctx, e.h, old); err != nil {
		t.Fatal(err)
	}
	s, err := e.h.Stage(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	e.fileIs(t, old, f.Path, e.fx.Hacluster, e.fx.Haclient)
	tmp := e.tempOf(t, "/etc/pacemaker", "cib-credentials")
	e.fileIs(t, f, "/etc/pacemaker/"+tmp, e.fx.Hacluster, e.fx.Haclient)
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	e.fileIs(t, f, f.Path, e.fx.Hacluster, e.fx.Haclient)
	if got := e.ls(t, "/etc/pacemaker"); got != "cib-credentials\n" {
		t.Errorf("after commit /etc/pacemaker holds %q", got)
	}
	if err := s.Commit(ctx); err == nil {
		t.Error("a second commit succeeded")
	}
	if err := s.Abort(ctx); err != nil {
		t.Errorf("abort after commit: %v", err)
	}
	e.fileIs(t, f, f.Path, e.fx.Hacluster, e.fx.Haclient)
}

// testStageThenAbort: an abort removes the staged file and leaves the
// target as it was; a second abort is no error.
func testStageThenAbort(t *testing.T, e env) {
	old := clientFile("alice", "old")
	if err := distribute.Write(ctx, e.h, old); err != nil {
		t.Fatal(err)
	}
	for _, f := range []distribute.File{serverFile("staged"), clientFile("alice", "new")} {
		s, err := e.h.Stage(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Abort(ctx); err != nil {
			t.Errorf("second abort: %v", err)
		}
	}
	if got := e.ls(t, "/etc/pacemaker") + e.ls(t, "/home/alice/.pcmkeys"); got != "prod.key\n" {
		t.Errorf("left behind: %q", got)
	}
	e.fileIs(t, old, "/home/alice/.pcmkeys/prod.key", e.fx.Alice, e.fx.Alice)
}

// testCommitRefusesTargetTurnedLink: a target replaced by a link between
// stage and commit is refused at commit; the link's target is untouched
// and an abort removes the staged file.
func testCommitRefusesTargetTurnedLink(t *testing.T, e env) {
	f := serverFile("new")
	if err := distribute.Write(ctx, e.h, serverFile("old")); err != nil {
		t.Fatal(err)
	}
	s, err := e.h.Stage(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	e.sh(t, `printf victim > "$R/root/victim"; ln -sfn "$R/root/victim" "$R/etc/pacemaker/cib-credentials"`)
	wantErr(t, e.h, "commit over a link", s.Commit(ctx), distribute.ErrUnsafe, "symbolic link")
	if err := s.Abort(ctx); err != nil {
		t.Errorf("abort: %v", err)
	}
	if got := e.sh(t, `cat "$R/root/victim"; ls -A "$R/etc/pacemaker"`); got != "victimcib-credentials\n" {
		t.Errorf("after the refused commit: %q", got)
	}
}

// testCancelledContext: nothing starts once ctx has ended, but an abort
// still removes what was staged (Ctrl-C cleans up).
func testCancelledContext(t *testing.T, e env) {
	cctx, cancel := context.WithCancel(ctx)
	f := serverFile("new")
	s, err := e.h.Stage(cctx, f)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := s.Abort(cctx); err != nil {
		t.Errorf("abort after cancel: %v", err)
	}
	if got := e.ls(t, "/etc/pacemaker"); got != "" {
		t.Errorf("left behind: %q", got)
	}
	if _, err := e.h.Stage(cctx, f); !errors.Is(err, context.Canceled) {
		t.Errorf("stage after cancel: %v", err)
	}
	if err := distribute.Write(cctx, e.h, f); !errors.Is(err, context.Canceled) {
		t.Errorf("write after cancel: %v", err)
	}
	if got := e.ls(t, "/etc/pacemaker"); got != "" {
		t.Errorf("a cancelled write left %q", got)
	}
}
