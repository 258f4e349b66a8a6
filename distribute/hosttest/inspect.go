package hosttest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/distribute"
)

// inspectRow is what Inspect must report for what setup put at path.
type inspectRow struct {
	name, path, owner, setup string
	distinct                 bool
	want                     distribute.FileState
	err                      error  // or the error to wrap
	msg                      string // and say
}

func inspectRows(fx Fixture) []inspectRow {
	const server = "/etc/pacemaker/authkey"
	const F = `"$R/etc/pacemaker/authkey"`
	const home = "/home/alice/.pcmkeys/k"
	const H = `"$R/home/alice/.pcmkeys/k"`
	inHome := `mkdir -m 700 "$R/home/alice/.pcmkeys"; chown $ALICE:$ALICE "$R/home/alice/.pcmkeys"; `
	file := func(path, owner, group string, uid, gid int, mode fs.FileMode, content string) distribute.FileState {
		sum := sha256.Sum256([]byte(content))
		return distribute.FileState{Path: path, Exists: true, Regular: true, Owner: owner, Group: group, UID: uid, GID: gid, Mode: mode, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
	}
	unhashed := func(st distribute.FileState) distribute.FileState { st.SHA256 = ""; return st }
	admin := func(st distribute.FileState) distribute.FileState {
		st.Owner, st.Group, st.UID, st.GID = "root", "root", fx.Admin, fx.Admin
		return st
	}
	hac := func(mode fs.FileMode) distribute.FileState {
		return file(server, "hacluster", "haclient", fx.Hacluster, fx.Haclient, mode, "k")
	}
	ownHac := `printf k > ` + F + `; chown $HAC:$HACG ` + F + `; chmod `
	return []inspectRow{
		{name: "missing", path: server, owner: "hacluster", want: distribute.FileState{Path: server}},
		{name: "missing directory", path: "/etc/pacemaker/none/authkey", owner: "hacluster", want: distribute.FileState{Path: "/etc/pacemaker/none/authkey"}},
		{name: "regular 0600", path: server, owner: "hacluster", setup: ownHac + "600 " + F, want: hac(0o600)},
		{name: "mode 0640", path: server, owner: "hacluster", setup: ownHac + "640 " + F, want: hac(0o640)},
		{name: "mode 0400", path: server, owner: "hacluster", setup: ownHac + "400 " + F, want: hac(0o400)},
		{name: "setgid 2600", path: server, owner: "hacluster", setup: ownHac + "2600 " + F, want: hac(0o600 | fs.ModeSetgid)},
		{name: "setuid and sticky 5600", path: server, owner: "hacluster", setup: ownHac + "5600 " + F, want: hac(0o600 | fs.ModeSetuid | fs.ModeSticky)},
		{name: "empty file", path: server, owner: "hacluster", setup: `: > ` + F + `; chown $HAC:$HACG ` + F + `; chmod 600 ` + F,
			want: file(server, "hacluster", "haclient", fx.Hacluster, fx.Haclient, 0o600, "")},
		{name: "symlink", path: server, owner: "hacluster", setup: `ln -s /etc/passwd ` + F,
			want: admin(distribute.FileState{Path: server, Exists: true, Symlink: true, Mode: 0o777, Size: int64(len("/etc/passwd"))})},
		{name: "FIFO", path: server, owner: "hacluster", setup: `mkfifo -m 600 ` + F,
			want: admin(distribute.FileState{Path: server, Exists: true, Mode: 0o600})},
		{name: "directory", path: server, owner: "hacluster", setup: `mkdir -m 700 ` + F,
			want: admin(distribute.FileState{Path: server, Exists: true, Mode: 0o700})},
		{name: "too large", path: server, owner: "hacluster", setup: `truncate -s 4G ` + F + `; chown $HAC:$HACG ` + F + `; chmod 600 ` + F,
			want: distribute.FileState{Path: server, Exists: true, Regular: true, Owner: "hacluster", Group: "haclient", UID: fx.Hacluster, GID: fx.Haclient, Mode: 0o600, Size: 4 << 30, TooLarge: true}},
		{name: "owned by another user", path: server, owner: "hacluster", distinct: true, setup: `printf k > ` + F + `; chown $BOB:$BOB ` + F + `; chmod 600 ` + F,
			want: file(server, "bob", "bob", fx.Bob, fx.Bob, 0o600, "k")},
		{name: "owned by a uid without a name", path: server, owner: "hacluster", distinct: true, setup: `printf k > ` + F + `; chown 4242:4343 ` + F + `; chmod 600 ` + F,
			want: file(server, "4242", "4343", 4242, 4343, 0o600, "k")},
		{name: "client file in a home", path: "~/.pcmkeys/k", owner: "alice", setup: inHome + `printf c > ` + H + `; chown $ALICE:$ALICE ` + H + `; chmod 600 ` + H,
			want: file(home, "alice", "alice", fx.Alice, fx.Alice, 0o600, "c")},
		{name: "symlink in a home", path: "~/.pcmkeys/k", owner: "alice", setup: inHome + `ln -s /etc/shadow ` + H + `; chown -h $ALICE:$ALICE ` + H,
			want: distribute.FileState{Path: home, Exists: true, Symlink: true, Owner: "alice", Group: "alice", UID: fx.Alice, GID: fx.Alice, Mode: 0o777, Size: int64(len("/etc/shadow"))}},
		{name: "too large in a home", path: "~/.pcmkeys/k", owner: "alice", setup: inHome + `truncate -s 4G ` + H + `; chown $ALICE:$ALICE ` + H + `; chmod 600 ` + H,
			want: distribute.FileState{Path: home, Exists: true, Regular: true, Owner: "alice", Group: "alice", UID: fx.Alice, GID: fx.Alice, Mode: 0o600, Size: 4 << 30, TooLarge: true}},
		// In a home the file is read as its owner would read it.
		{name: "unreadable by its owner in a home", path: "~/.pcmkeys/k", owner: "alice", setup: inHome + `printf c > ` + H + `; chown $ALICE:$ALICE ` + H + `; chmod 200 ` + H,
			want: unhashed(file(home, "alice", "alice", fx.Alice, fx.Alice, 0o200, "c"))},
		{name: "root's file in a home", path: "~/.pcmkeys/k", owner: "alice", distinct: true, setup: inHome + `printf c > ` + H + `; chown 0:0 ` + H + `; chmod 600 ` + H,
			want: unhashed(file(home, "root", "root", 0, 0, 0o600, "c"))},
		{name: "root's readable file in a home", path: "~/.pcmkeys/k", owner: "alice", distinct: true, setup: inHome + `printf c > ` + H + `; chown 0:0 ` + H + `; chmod 644 ` + H,
			want: file(home, "root", "root", 0, 0, 0o644, "c")},
		{name: "missing directory in a home", path: "~/nodir/k", owner: "alice", want: distribute.FileState{Path: "/home/alice/nodir/k"}},
		// What Inspect refuses.
		{name: "directory writable by others", path: server, owner: "hacluster", setup: `chmod 777 "$R/etc/pacemaker"`,
			err: distribute.ErrUnsafe, msg: "directory /etc/pacemaker is writable by group or other"},
		{name: "symlinked directory", path: "/etc/pacemaker/sub/authkey", owner: "hacluster", setup: `mkdir -m 750 "$R/root/elsewhere"; ln -s "$R/root/elsewhere" "$R/etc/pacemaker/sub"`,
			err: distribute.ErrUnsafe, msg: "directory /etc/pacemaker/sub is a symbolic link"},
		{name: "root's closed directory in a home", path: "~/.pcmkeys/k", owner: "alice", distinct: true, setup: `mkdir -m 700 "$R/home/alice/.pcmkeys"; printf c > ` + H + `; chown $ALICE:$ALICE ` + H,
			msg: "alice may not enter directory /home/alice/.pcmkeys"},
		{name: "home missing", path: "~/.pcmkeys/k", owner: "bob", setup: `rm -rf "$R/home/bob"`, msg: "home directory /home/bob of bob does not exist"},
		{name: "unknown owner", path: server, owner: "mallory", err: distribute.ErrUnknownUser, msg: `"mallory"`},
	}
}

// runInspect: Inspect reports the same FileState on every transport for
// every kind of thing at a target, within a bound however large the file
// (a 4 GB sparse file is never read).
func runInspect(t *testing.T, newHost func(t *testing.T) (distribute.Host, Fixture)) {
	_, fx := newHost(t)
	for _, row := range inspectRows(fx) {
		t.Run(row.name, func(t *testing.T) {
			e := shaped(t, newHost, row.distinct, row.setup)
			h, fx := e.h, e.fx
			start := time.Now()
			got, err := h.Inspect(ctx, row.path, row.owner)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("inspect took %s", d)
			}
			if row.msg != "" {
				wantErr(t, h, "inspect", err, row.err, row.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Exists && !got.Regular && !got.Symlink && got.Mode == 0o700 {
				got.Size = 0 // a directory's size depends on its file system
			}
			if !fx.Distinct { // one id for every user: its names are any of theirs
				got.Owner, got.Group = row.want.Owner, row.want.Group
			}
			if got != row.want {
				t.Errorf("inspect:\n got %+v\nwant %+v", got, row.want)
			}
		})
	}
}

// testRead: Read gives a file's bytes, and refuses a link, a huge file and
// what is not a file.
func testRead(t *testing.T, e env) {
	f := serverFile("the key")
	if err := distribute.Write(ctx, e.h, f); err != nil {
		t.Fatal(err)
	}
	if got, err := e.h.Read(ctx, f.Path, f.Owner); err != nil || string(got) != "the key" {
		t.Errorf("read = %q, %v", got, err)
	}
	e.sh(t, `cd "$R/etc/pacemaker"; ln -s /etc/passwd link; truncate -s 4G huge; mkfifo fifo`)
	_, err := e.h.Read(ctx, "/etc/pacemaker/link", "hacluster")
	wantErr(t, e.h, "read through a link", err, distribute.ErrUnsafe, "symbolic link")
	start := time.Now()
	_, err = e.h.Read(ctx, "/etc/pacemaker/huge", "hacluster")
	wantErr(t, e.h, "read of a 4 GB file", err, nil, fmt.Sprintf("larger than %d bytes", 16<<20))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("read of a 4 GB file took %s", d)
	}
	if _, err := e.h.Read(ctx, "/etc/pacemaker/fifo", "hacluster"); err == nil {
		t.Error("read a FIFO")
	}
	if _, err := e.h.Read(ctx, "/etc/pacemaker/none", "hacluster"); err == nil {
		t.Error("read a missing file")
	}
	e.sh(t, `d=$R/home/alice/.pcmkeys; mkdir -m 700 "$d"; ln -s "$R/root" "$d/k"; truncate -s 4G "$d/huge"; chown -hR $ALICE:$ALICE "$d"`)
	_, err = e.h.Read(ctx, "~/.pcmkeys/k", "alice")
	wantErr(t, e.h, "read through a link in a home", err, distribute.ErrUnsafe, "symbolic link")
	start = time.Now()
	_, err = e.h.Read(ctx, "~/.pcmkeys/huge", "alice")
	wantErr(t, e.h, "read of a 4 GB file in a home", err, nil, fmt.Sprintf("larger than %d bytes", 16<<20))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("read of a 4 GB file in a home took %s", d)
	}
}

// testRemove: a file goes, a missing one is no error, a link goes itself
// (what it points to stays), and a directory is refused.
func testRemove(t *testing.T, e env) {
	for _, f := range []distribute.File{serverFile("k"), clientFile("alice", "c")} {
		if err := distribute.Write(ctx, e.h, f); err != nil {
			t.Fatal(err)
		}
		if err := e.h.Remove(ctx, f.Path, f.Owner); err != nil {
			t.Fatal(err)
		}
		if st, err := e.h.Inspect(ctx, f.Path, f.Owner); err != nil || st.Exists {
			t.Errorf("after remove: %+v %v", st, err)
		}
		if err := e.h.Remove(ctx, f.Path, f.Owner); err != nil {
			t.Errorf("removing a missing file: %v", err)
		}
	}
	if err := e.h.Remove(ctx, "/etc/pacemaker/none/k", "hacluster"); err != nil {
		t.Errorf("removing a file in a missing directory: %v", err)
	}
	e.sh(t, `printf victim > "$R/root/victim"; ln -s "$R/root/victim" "$R/etc/pacemaker/cib-credentials"; ln -s "$R/root/victim" "$R/home/alice/.pcmkeys/prod.key"; chown -h $ALICE:$ALICE "$R/home/alice/.pcmkeys/prod.key"`)
	for _, f := range []distribute.File{serverFile("k"), clientFile("alice", "c")} {
		if err := e.h.Remove(ctx, f.Path, f.Owner); err != nil {
			t.Errorf("remove a link at %s: %v", f.Path, err)
		}
	}
	if got := e.sh(t, `cat "$R/root/victim"; ls -A "$R/etc/pacemaker" "$R/home/alice/.pcmkeys"`); !strings.HasPrefix(got, "victim") || strings.Contains(got, "cib-credentials") || strings.Contains(got, "prod.key") {
		t.Errorf("after removing the links: %q", got)
	}
	e.sh(t, `mkdir "$R/etc/pacemaker/authkey"`)
	err := e.h.Remove(ctx, "/etc/pacemaker/authkey", "hacluster")
	wantErr(t, e.h, "remove a directory", err, distribute.ErrUnsafe, "not a regular file")
}

// testLookupUser: accounts come from the host's own databases.
func testLookupUser(t *testing.T, e env) {
	a, err := e.h.LookupUser(ctx, "alice")
	if err != nil || a.UID != e.fx.Alice || a.GID != e.fx.Alice || a.Home != "/home/alice" || a.Name != "alice" {
		t.Errorf("LookupUser(alice) = %+v, %v", a, err)
	}
	_, err = e.h.LookupUser(ctx, "mallory")
	wantErr(t, e.h, "lookup of an unknown user", err, distribute.ErrUnknownUser, `"mallory"`)
	if _, err := e.h.LookupUser(ctx, "-bad"); err == nil || errors.Is(err, distribute.ErrUnknownUser) {
		t.Errorf("lookup of an invalid name: %v", err)
	}
}
