// Package hosttest is the contract every [distribute.Host] must meet: the
// write protocol (see package distribute) and its refusals, Inspect, Read,
// Remove, Sweep and LookupUser, case by case. distribute's tests run it
// against [distribute.Local] (as root and as an ordinary user) and against
// [distribute.SSHHost] on an internal/sshlab host, so that a case written
// for one transport holds for the other.
//
// The suite shapes and looks at the host's files from outside the Host
// under test, through a [Fixture]: shell scripts run on the host as its
// administrator.
package hosttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/distribute"
)

// Fixture is how the suite reaches a host around the Host under test.
//
// Every call of the newHost function given to [Run] returns a host in
// this state:
//   - $R/etc/pacemaker is an empty directory, mode 0750, owned by Admin
//     with group haclient; $R/etc is not writable by group or other;
//   - $R/home/alice and $R/home/bob are empty directories, mode 0700,
//     owned by their users;
//   - $R/root is an empty directory, mode 0700, owned by Admin (the
//     suite's scratch space outside the paths it writes);
//   - the host knows the users hacluster (primary group haclient, home
//     /var/lib/pacemaker, which need not exist), alice and bob, and no
//     user mallory nor group wheelx.
type Fixture struct {
	// Sh runs script with sh -e on the host as its administrator, with
	// these variables exported: R, the host's root prefix ("" for /);
	// ADMIN, HAC, HACG, ALICE and BOB, the ids below. It returns what
	// the script wrote to its standard output and fails the test if
	// the script fails.
	Sh func(t *testing.T, script string) string
	// Path returns where this machine sees the host's path p (beneath
	// its root prefix), for the suite to watch a directory (inotify).
	Path func(p string) string
	// The ids of the host's users.
	Admin, Hacluster, Haclient, Alice, Bob int
	// Distinct says the users have distinct ids and Sh may give files
	// to any of them (the administrator is root). The cases about
	// files and directories of another user need it and skip without;
	// and without it, where every user has the same id, the owner and
	// group names Inspect gives are not compared.
	Distinct bool
}

// Run runs the contract. newHost returns a new Host in the state
// [Fixture] describes, with the Fixture that reaches it; each case calls
// it once, and the cases run one after another.
func Run(t *testing.T, newHost func(t *testing.T) (distribute.Host, Fixture)) {
	cases := []struct {
		name string
		fn   func(*testing.T, env)
	}{
		{"WriteServerFile", testWriteServerFile},
		{"WriteMakesDirectories", testWriteMakesDirectories},
		{"WriteReplacesLooserFile", testWriteReplacesLooserFile},
		{"WriteClientFileInHome", testWriteClientFileInHome},
		{"WritePathWithSpaces", testWritePathWithSpaces},
		{"WriteOverHardLink", testWriteOverHardLink},
		{"WriteOverTooLargeFile", testWriteOverTooLargeFile},
		{"StageThenCommit", testStageThenCommit},
		{"StageThenAbort", testStageThenAbort},
		{"CommitRefusesTargetTurnedLink", testCommitRefusesTargetTurnedLink},
		{"CancelledContext", testCancelledContext},
		{"ModeNeverLooser", testModeNeverLooser},
		{"Sweep", testSweep},
		{"SweepThenAbort", testSweepThenAbort},
		{"Remove", testRemove},
		{"Read", testRead},
		{"LookupUser", testLookupUser},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, fx := newHost(t)
			c.fn(t, env{h: h, fx: fx})
		})
	}
	t.Run("Refusals", func(t *testing.T) { runRefusals(t, newHost) })
	t.Run("Inspect", func(t *testing.T) { runInspect(t, newHost) })
}

// env is one host and its fixture.
type env struct {
	h  distribute.Host
	fx Fixture
}

func (e env) sh(t *testing.T, script string) string {
	t.Helper()
	return e.fx.Sh(t, script)
}

// shaped returns a new host shaped by setup (a script for [Fixture.Sh]);
// a case that gives files to other users (distinct) skips where the
// fixture cannot.
func shaped(t *testing.T, newHost func(t *testing.T) (distribute.Host, Fixture), distinct bool, setup string) env {
	t.Helper()
	h, fx := newHost(t)
	e := env{h: h, fx: fx}
	if distinct {
		e.requireDistinct(t)
	}
	if setup != "" {
		e.sh(t, setup)
	}
	return e
}

// requireDistinct skips a case that gives files to other users.
func (e env) requireDistinct(t *testing.T) {
	t.Helper()
	if !e.fx.Distinct {
		t.Skip("needs users with distinct ids and files given to them: run as root (CI does)")
	}
}

// state lists what the suite's directories hold (path, type, mode,
// owner, size, link count), so a case can assert that nothing changed.
func (e env) state(t *testing.T) string {
	t.Helper()
	return e.sh(t, `find "$R/etc/pacemaker" "$R/home" "$R/root" -printf '%p %y %m %u:%g %s %n\n' | sort`)
}

// ls lists a directory of the host, dot files included, one per line.
func (e env) ls(t *testing.T, dir string) string {
	t.Helper()
	return e.sh(t, `ls -A "$R"`+quote(dir))
}

// fileIs asserts a file's owner, group, mode, link count and content.
func (e env) fileIs(t *testing.T, f distribute.File, path string, uid, gid int) {
	t.Helper()
	got := e.sh(t, `f="$R"`+quote(path)+`; stat -c '%u:%g %a %h %F' -- "$f"; sha256sum < "$f"`)
	want := fmt.Sprintf("%d:%d %o 1 regular file\n%s  -\n", uid, gid, f.Mode.Perm(), f.SHA256())
	if strings.Replace(got, "regular empty file", "regular file", 1) != want {
		t.Errorf("%s is\n%swant\n%s", path, got, want)
	}
}

// quote single-quotes s for sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var ctx = context.Background()

func serverFile(content string) distribute.File {
	return distribute.File{Path: "/etc/pacemaker/cib-credentials", Content: []byte(content), Owner: "hacluster", Group: "haclient", Mode: 0o600}
}

func clientFile(owner, content string) distribute.File {
	return distribute.File{Path: "~/.pcmkeys/prod.key", Content: []byte(content), Owner: owner, Mode: 0o600}
}

func withPath(f distribute.File, p string) distribute.File      { f.Path = p; return f }
func withOwner(f distribute.File, o string) distribute.File     { f.Owner = o; return f }
func withGroup(f distribute.File, g string) distribute.File     { f.Group = g; return f }
func withMode(f distribute.File, m os.FileMode) distribute.File { f.Mode = m; return f }

// wantErr asserts that err is a failure that wraps want (if not nil),
// says msg and names the host.
func wantErr(t *testing.T, h distribute.Host, what string, err, want error, msg string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s succeeded, want a refusal saying %q", what, msg)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s: %q does not wrap %v", what, err, want)
	case !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), h.Name()):
		t.Errorf("%s: %q does not say %q and name the host %s", what, err, msg, h.Name())
	}
}
