package hosttest

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/policies"
)

// refusal is a write the protocol refuses, with the host shaped by setup
// (a script for [Fixture.Sh]).
type refusal struct {
	name     string
	distinct bool // setup gives files to another user
	setup    string
	file     distribute.File
	want     error  // wrapped by the error, if not nil
	msg      string // said by the error
}

func refusals(fx Fixture) []refusal {
	good := serverFile("hacluster:" + strings.Repeat("ab", 32) + "\n")
	client := distribute.File{Path: "~/.pcmkeys/k", Content: []byte("00"), Owner: "alice", Mode: 0o600}
	const P = `"$R/etc/pacemaker`
	return []refusal{
		// What is at the target.
		{name: "symlinked target", setup: `printf victim > "$R/root/victim"; ln -s "$R/root/victim" ` + P + `/cib-credentials"`,
			file: good, want: distribute.ErrUnsafe, msg: "/etc/pacemaker/cib-credentials is a symbolic link"},
		{name: "dangling symlink at target", setup: `ln -s "$R/root/nothing" ` + P + `/cib-credentials"`,
			file: good, want: distribute.ErrUnsafe, msg: "is a symbolic link"},
		{name: "directory at target", setup: `mkdir ` + P + `/cib-credentials"`,
			file: good, want: distribute.ErrUnsafe, msg: "not a regular file"},
		{name: "FIFO at target", setup: `mkfifo ` + P + `/cib-credentials"`,
			file: good, want: distribute.ErrUnsafe, msg: "not a regular file"},
		{name: "target owned by another user", distinct: true, setup: `printf planted > ` + P + `/cib-credentials"; chown $BOB:$BOB ` + P + `/cib-credentials"`,
			file: good, want: distribute.ErrUnsafe, msg: fmt.Sprintf("owned by uid %d, neither root nor hacluster", fx.Bob)},
		// The directories on the way.
		{name: "symlinked parent directory", setup: `mkdir -m 750 "$R/root/elsewhere"; ln -s "$R/root/elsewhere" ` + P + `/sub"`,
			file: withPath(good, "/etc/pacemaker/sub/cib-credentials"), want: distribute.ErrUnsafe, msg: "directory /etc/pacemaker/sub is a symbolic link"},
		{name: "parent is a file", setup: `printf x > ` + P + `/sub"`,
			file: withPath(good, "/etc/pacemaker/sub/cib-credentials"), want: distribute.ErrUnsafe, msg: "/etc/pacemaker/sub is not a directory"},
		{name: "directory writable by others", setup: `chmod 777 ` + P + `"`,
			file: good, want: distribute.ErrUnsafe, msg: "directory /etc/pacemaker is writable by group or other"},
		{name: "ancestor writable by group", setup: `mkdir -m 775 ` + P + `/a"; mkdir -m 750 ` + P + `/a/b"`,
			file: withPath(good, "/etc/pacemaker/a/b/cib-credentials"), want: distribute.ErrUnsafe, msg: "directory /etc/pacemaker/a is writable by group or other"},
		{name: "directory owned by another user", distinct: true, setup: `chown $BOB ` + P + `"`,
			file: good, want: distribute.ErrUnsafe, msg: fmt.Sprintf("directory /etc/pacemaker is owned by uid %d, not root", fx.Bob)},
		// In a home.
		{name: "home missing", setup: `rm -rf "$R/home/bob"`,
			file: withOwner(client, "bob"), msg: "home directory /home/bob of bob does not exist"},
		{name: "home writable by group", setup: `chmod 770 "$R/home/alice"`,
			file: client, want: distribute.ErrUnsafe, msg: "directory /home/alice is writable by group or other"},
		{name: "symlinked directory in a home", setup: `mkdir -m 700 "$R/root/elsewhere"; ln -s "$R/root/elsewhere" "$R/home/alice/.pcmkeys"; chown -h $ALICE:$ALICE "$R/home/alice/.pcmkeys"`,
			file: client, want: distribute.ErrUnsafe, msg: "directory /home/alice/.pcmkeys is a symbolic link"},
		{name: "symlinked target in a home", setup: `mkdir -m 700 "$R/home/alice/.pcmkeys"; printf victim > "$R/root/victim"; ln -s "$R/root/victim" "$R/home/alice/.pcmkeys/k"; chown -hR $ALICE:$ALICE "$R/home/alice/.pcmkeys"`,
			file: client, want: distribute.ErrUnsafe, msg: "/home/alice/.pcmkeys/k is a symbolic link"},
		{name: "another user's directory in a home", distinct: true, setup: `mkdir -m 700 "$R/home/alice/.pcmkeys"; chown $BOB:$BOB "$R/home/alice/.pcmkeys"`,
			file: client, want: distribute.ErrUnsafe, msg: fmt.Sprintf("directory /home/alice/.pcmkeys is owned by uid %d", fx.Bob)},
		{name: "another user's file in a home", distinct: true, setup: `mkdir -m 700 "$R/home/alice/.pcmkeys"; chown $ALICE:$ALICE "$R/home/alice/.pcmkeys"; printf x > "$R/home/alice/.pcmkeys/k"; chown $BOB:$BOB "$R/home/alice/.pcmkeys/k"`,
			file: client, want: distribute.ErrUnsafe, msg: fmt.Sprintf("owned by uid %d, neither root nor alice", fx.Bob)},
		{name: "root's closed directory in a home", distinct: true, setup: `mkdir -m 700 "$R/home/alice/.pcmkeys"`,
			file: client, msg: "alice may not enter directory /home/alice/.pcmkeys"},
		{name: "root's directory in a home", distinct: true, setup: `mkdir -m 755 "$R/home/alice/.pcmkeys"`,
			file: client, msg: "alice may not write in directory /home/alice/.pcmkeys"},
		{name: "read-only directory in a home", setup: `mkdir -m 500 "$R/home/alice/.pcmkeys"; chown $ALICE:$ALICE "$R/home/alice/.pcmkeys"`,
			file: withPath(client, "~/.pcmkeys/sub/k"), msg: "alice may not write in directory /home/alice/.pcmkeys"},
		// The request itself.
		{name: "mode for group", file: withMode(good, 0o640), want: policies.ErrUnsafeMode, msg: "gives group or other access"},
		{name: "setuid mode", file: withMode(good, 0o600|fs.ModeSetuid), want: policies.ErrUnsafeMode, msg: "setuid"},
		{name: "mode the owner cannot read", file: withMode(good, 0o200), want: policies.ErrUnsafeMode, msg: "does not let the owner read"},
		{name: "relative path", file: withPath(good, "etc/pacemaker/x"), want: policies.ErrBadPath, msg: "is not absolute"},
		{name: "dot-dot path", file: withPath(good, "/etc/pacemaker/../x"), want: policies.ErrBadPath, msg: "'..'"},
		{name: "path with a newline", file: withPath(good, "/etc/pacemaker/new\nline"), want: policies.ErrBadPath, msg: "control character"},
		{name: "the home itself", file: withPath(client, "~/"), want: policies.ErrBadPath, msg: "names no file"},
		{name: "unknown owner", file: withOwner(good, "mallory"), want: distribute.ErrUnknownUser, msg: `"mallory"`},
		{name: "unknown group", file: withGroup(good, "wheelx"), want: distribute.ErrUnknownGroup, msg: `"wheelx"`},
	}
}

// runRefusals: every refusal holds for a one-step write and for a stage,
// names the host, and changes nothing on it.
func runRefusals(t *testing.T, newHost func(t *testing.T) (distribute.Host, Fixture)) {
	_, fx := newHost(t)
	for _, tc := range refusals(fx) {
		t.Run(tc.name, func(t *testing.T) {
			e := shaped(t, newHost, tc.distinct, tc.setup)
			h := e.h
			before := e.state(t)
			wantErr(t, h, "write", distribute.Write(ctx, h, tc.file), tc.want, tc.msg)
			s, err := h.Stage(ctx, tc.file)
			if err == nil {
				s.Abort(ctx)
			}
			wantErr(t, h, "stage", err, tc.want, tc.msg)
			if after := e.state(t); after != before {
				t.Errorf("the refused write changed the host:\n%s---\n%s", before, after)
			}
		})
	}
}
