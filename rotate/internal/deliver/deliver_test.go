package deliver

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
	"github.com/pcmkeys/pcmkeys/internal/testroot"
	"github.com/pcmkeys/pcmkeys/policies"
)

// lab is one host to deliver to, and the way around it.
type lab struct {
	connect func(ctx context.Context, h config.Host) (distribute.Host, error)
	// sh runs a script on the host as root, with R (its root prefix) and
	// HAC, HACG, ALICE, BOB (ids) set.
	sh func(t *testing.T, script string) string
	// sessions counts the SSH sessions opened so far (always 0 locally).
	sessions func() int64
}

// localLab is a Local host under a root prefix; distinct asks for users
// with ids of their own (root only).
func localLab(t *testing.T, distinct bool) lab {
	if distinct {
		testroot.RequireRoot(t)
	}
	r := testroot.New(t)
	ids := fmt.Sprintf("R=%s HAC=%d HACG=%d ALICE=%d BOB=%d", r.Dir, r.Hacluster, r.Haclient, r.Alice, r.Bob)
	if out, err := exec.Command("sh", "-ec", ids+`; mkdir -m 750 "$R/etc/pacemaker"; chown :$HACG "$R/etc/pacemaker"`).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return lab{
		connect: func(ctx context.Context, h config.Host) (distribute.Host, error) {
			return distribute.NewLocal(h.Name, r.Dir)
		},
		sh: func(t *testing.T, script string) string {
			t.Helper()
			out, err := exec.Command("sh", "-ec", ids+"\n"+script).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v: %s", script, err, out)
			}
			return string(out)
		},
		sessions: func() int64 { return 0 },
	}
}

func sshLab(t *testing.T) lab {
	// At VERBOSE sshd logs every session it starts ("Starting session:"):
	// the count of round trips, from the host's side. (sh runs through
	// nsenter, not sshd.)
	l := sshlab.Start(t, 1, sshlab.Options{LogLevel: "VERBOSE"})
	host := l.Hosts[0]
	d, err := distribute.NewSSHDialer(distribute.SSHConfig{User: "root", KnownHosts: l.KnownHosts, IdentityFiles: []string{l.IdentityFile}, ConnectTimeout: 10 * time.Second, CommandTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	ids := fmt.Sprintf("R= HAC=%d HACG=%d ALICE=%d BOB=%d", sshlab.UIDHacluster, sshlab.GIDHaclient, sshlab.UIDAlice, sshlab.UIDBob)
	return lab{
		connect: func(ctx context.Context, h config.Host) (distribute.Host, error) {
			return d.Open(ctx, h.Name, distribute.SSHEndpoint{Address: "127.0.0.1", Port: host.Port}, "")
		},
		sh: func(t *testing.T, script string) string {
			t.Helper()
			out, err := host.Exec(context.Background(), "set -e; "+ids+"\n"+script)
			if err != nil {
				t.Fatalf("%s: %v: %s", script, err, out)
			}
			return out
		},
		sessions: func() int64 {
			log, err := host.Log()
			if err != nil {
				t.Fatal(err)
			}
			return int64(strings.Count(log, "Starting session: "))
		},
	}
}

// TestFilesLocal and TestFilesSSH: every mode of delivery ends the same
// on a host that works one file at a time and on one that works batches;
// over SSH a host's files cost one round trip, and one more only for what
// that finds to write besides (a kept file's other owner or mode) or a
// home to look up.
func TestFilesLocal(t *testing.T) { testFiles(t, localLab(t, true)) }

func TestFilesSSH(t *testing.T) { testFiles(t, sshLab(t)) }

func srv(name, content string, mode Mode) Want {
	f := distribute.File{Path: "/etc/pacemaker/" + name, Content: []byte(content), Owner: "hacluster", Group: "haclient", Mode: 0o600}
	return NewWant(f, policies.CIBCredentials, "", 0, mode)
}

func removal(owner, name string) Want {
	f := distribute.File{Path: "~/.pcmkeys/" + name, Owner: owner}
	return NewWant(f, policies.ClientKey, "", 0, Remove)
}

// actions lists each file's action (and error) of one host's result.
func actions(r Result) string {
	var b strings.Builder
	for _, f := range r.Files {
		fmt.Fprintf(&b, "%s %s", f.Path, f.Action)
		if f.Swept > 0 {
			fmt.Fprintf(&b, " swept %d", f.Swept)
		}
		if f.Error != "" {
			fmt.Fprintf(&b, " (%s)", f.Error)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func testFiles(t *testing.T, l lab) {
	ctx := context.Background()
	l.sh(t, `cd "$R/etc/pacemaker"
printf same > insync; printf old > drift; printf other > kept; printf same > keepmode
chown $HAC:$HACG insync drift kept keepmode; chmod 600 insync drift kept keepmode; chmod 640 keepmode
printf x > .drift.pcmkeys-0123456789abcdef
mkdir -m 700 "$R/home/alice/.pcmkeys"; printf k > "$R/home/alice/.pcmkeys/gone"; printf k > "$R/home/alice/.pcmkeys/theirs"
chown $ALICE:$ALICE "$R/home/alice/.pcmkeys" "$R/home/alice/.pcmkeys/gone"`)
	env := NewWant(distribute.File{Path: "~/.pcmkeys/env", Owner: "bob", Mode: 0o600}, policies.ClientEnv, "", 0, WriteIfDrift)
	env.Render = func(home string) ([]byte, error) { return []byte("home=" + home + "\n"), nil }
	plan := Host{Host: config.Host{Name: "h"}, Files: []Want{
		srv("insync", "same", WriteIfDrift),
		srv("drift", "new", WriteIfDrift),
		srv("kept", "new", KeepExisting),
		srv("keepmode", "same", KeepExisting),
		removal("alice", "gone"),
		removal("alice", "theirs"),
		removal("alice", "missing"),
		NewWant(distribute.File{Path: "/etc/pacemaker/cib-credentials", Owner: "alice"}, policies.CIBCredentials, "", 0, LeaveAlone),
		srv("authkey", "ak", WriteAlways),
		env,
	}}
	state := func() string {
		return l.sh(t, `cd "$R"; for f in etc/pacemaker/* etc/pacemaker/.[!.]* home/*/.pcmkeys/*; do [ -e "$f" ] && printf '%s %s %s\n' "$f" "$(stat -c '%u:%g %a' "$f")" "$(cat "$f" | tr '\n' ' ')"; done; :`)
	}
	e := &Engine{Connect: l.connect, DryRun: true}
	before := state()
	s0 := l.sessions()
	res, err := e.Deliver(ctx, []Host{plan})
	want := `/etc/pacemaker/insync in_sync
/etc/pacemaker/drift write
/etc/pacemaker/kept kept
/etc/pacemaker/keepmode write
~/.pcmkeys/gone remove
~/.pcmkeys/theirs not_theirs
~/.pcmkeys/missing remove
/etc/pacemaker/cib-credentials not_theirs
/etc/pacemaker/authkey write
~/.pcmkeys/env write
`
	if err != nil || actions(res[0]) != want {
		t.Errorf("dry run: %v\n%swant\n%s", err, actions(res[0]), want)
	}
	if after := state(); after != before {
		t.Errorf("a dry run changed the host:\n%swas\n%s", after, before)
	}
	s1 := l.sessions()

	e.DryRun = false
	res, err = e.Deliver(ctx, []Host{plan})
	want = `/etc/pacemaker/insync in_sync
/etc/pacemaker/drift written swept 1
/etc/pacemaker/kept kept
/etc/pacemaker/keepmode written
~/.pcmkeys/gone removed
~/.pcmkeys/theirs not_theirs
~/.pcmkeys/missing removed
/etc/pacemaker/cib-credentials not_theirs
/etc/pacemaker/authkey written
~/.pcmkeys/env written
`
	if err != nil || actions(res[0]) != want {
		t.Errorf("delivery: %v\n%swant\n%s", err, actions(res[0]), want)
	}
	s2 := l.sessions()
	got := l.sh(t, `cd "$R"; cat etc/pacemaker/drift etc/pacemaker/kept etc/pacemaker/authkey; stat -c %a etc/pacemaker/keepmode; cat home/bob/.pcmkeys/env; ls -A etc/pacemaker home/alice/.pcmkeys`)
	if want := "newotherak600\nhome=/home/bob\netc/pacemaker:\nauthkey\ndrift\ninsync\nkeepmode\nkept\n\nhome/alice/.pcmkeys:\ntheirs\n"; got != want {
		t.Errorf("the host holds\n%swant\n%s", got, want)
	}

	// Again, the home known: everything is as wanted.
	plan.Homes = map[string]string{"bob": "/home/bob"}
	res, err = e.Deliver(ctx, []Host{plan})
	want = strings.NewReplacer("drift written swept 1", "drift in_sync", "keepmode written", "keepmode in_sync", "env written", "env in_sync").Replace(want)
	if err != nil || actions(res[0]) != want {
		t.Errorf("delivery again: %v\n%swant\n%s", err, actions(res[0]), want)
	}
	s3 := l.sessions()
	if s0 != 0 || s1 != 0 || s2 != 0 || s3 != 0 {
		// Over SSH: a lookup of bob's home and the batch; then the same,
		// and one more batch for keepmode; then the batch alone.
		if s1-s0 != 2 || s2-s1 != 3 || s3-s2 != 1 {
			t.Errorf("sessions: dry run %d, delivery %d, again %d; want 2, 3, 1", s1-s0, s2-s1, s3-s2)
		}
	}
}

// TestStageLocal and TestStageSSH: a host's staged files are staged,
// committed or aborted together, in one round trip each over SSH; a file
// that cannot be staged fails its host and leaves nothing staged there.
func TestStageLocal(t *testing.T) { testStage(t, localLab(t, false)) }

func TestStageSSH(t *testing.T) { testStage(t, sshLab(t)) }

func testStage(t *testing.T, l lab) {
	ctx := context.Background()
	e := &Engine{Connect: l.connect}
	plan := Host{Host: config.Host{Name: "h"}, Files: []Want{srv("cib-credentials", "c1", WriteAlways), srv("authkey", "a1", WriteAlways)}}
	s0 := l.sessions()
	st, res := e.Stage(ctx, []Host{plan})
	if err := Partial(res); err != nil || actions(res[0]) != "/etc/pacemaker/cib-credentials staged\n/etc/pacemaker/authkey staged\n" {
		t.Fatalf("stage: %v\n%s", err, actions(res[0]))
	}
	if got := l.sh(t, `ls -A "$R/etc/pacemaker" | grep -c '^\.' || :`); got != "2\n" {
		t.Errorf("%s temporary files, want 2", got)
	}
	s1 := l.sessions()
	res = st.Commit(ctx)
	if err := Partial(res); err != nil || actions(res[0]) != "/etc/pacemaker/cib-credentials committed\n/etc/pacemaker/authkey committed\n" {
		t.Fatalf("commit: %v\n%s", err, actions(res[0]))
	}
	s2 := l.sessions()
	if got := l.sh(t, `cd "$R/etc/pacemaker"; cat cib-credentials authkey; ls -A`); got != "c1a1authkey\ncib-credentials\n" {
		t.Errorf("after the commit: %q", got)
	}
	// The second file's target is a link: nothing stays staged.
	l.sh(t, `cd "$R/etc/pacemaker"; rm authkey; ln -s cib-credentials authkey`)
	plan.Files = []Want{srv("cib-credentials", "c2", WriteAlways), srv("authkey", "a2", WriteAlways)}
	st, res = e.Stage(ctx, []Host{plan})
	if err := Partial(res); err == nil || !strings.Contains(res[0].Error, "symbolic link") || len(res[0].Files) != 2 {
		t.Errorf("stage over a link: %v\n%s", err, actions(res[0]))
	}
	s3 := l.sessions()
	if res := st.Commit(ctx); res[0].Status != StatusFailed {
		t.Errorf("a host that failed staging was committed: %+v", res[0])
	}
	if got := l.sh(t, `cd "$R/etc/pacemaker"; cat cib-credentials; ls -A`); got != "c1authkey\ncib-credentials\n" {
		t.Errorf("after the refused stage: %q", got)
	}
	if s3 != 0 && (s1-s0 != 1 || s2-s1 != 1 || s3-s2 != 2) {
		t.Errorf("sessions: stage %d, commit %d, refused stage and its abort %d; want 1, 1, 2", s1-s0, s2-s1, s3-s2)
	}
}

// TestThenLocal and TestThenSSH: a host's Then runs once its files are in
// place — over SSH in the same round trip as they — and never after a
// file failed, nor in a dry run; Done reads what it said.
func TestThenLocal(t *testing.T) { testThen(t, localLab(t, false)) }

func TestThenSSH(t *testing.T) { testThen(t, sshLab(t)) }

func testThen(t *testing.T, l lab) {
	ctx := context.Background()
	var said []string
	then := &Then{Command: "cat /etc/pacemaker/cib-credentials", Done: func(ctx context.Context, out string, err error, res *Result) {
		said = append(said, fmt.Sprintf("%q %v", out, err))
	}}
	plan := func(content string) []Host {
		return []Host{{Host: config.Host{Name: "h"}, Then: then, Files: []Want{srv("cib-credentials", content, WriteIfDrift), removal("alice", "gone")}}}
	}
	e := &Engine{Connect: l.connect, DryRun: true}
	if _, err := e.Deliver(ctx, plan("c1")); err != nil || len(said) != 0 {
		t.Errorf("dry run: %v, then said %v", err, said)
	}
	e.DryRun = false
	s0 := l.sessions()
	if _, err := e.Deliver(ctx, plan("c1")); err != nil {
		t.Fatal(err)
	}
	s1 := l.sessions()
	staging := plan("c2")
	staging[0].Files = staging[0].Files[:1]
	st, res := e.Stage(ctx, staging)
	if err := Partial(res); err != nil {
		t.Fatal(err)
	}
	if err := Partial(st.Commit(ctx)); err != nil {
		t.Fatal(err)
	}
	s2 := l.sessions()
	l.sh(t, `ln -s /etc/passwd "$R/etc/pacemaker/link"`)
	failing := plan("c3")
	failing[0].Files = append(failing[0].Files, srv("link", "x", WriteAlways))
	if _, err := e.Deliver(ctx, failing); err == nil {
		t.Error("a write over a link succeeded")
	}
	failing[0].Files = failing[0].Files[2:]
	st, _ = e.Stage(ctx, failing)
	st.Commit(ctx)
	if s2 == 0 { // locally: the command cannot run under a root prefix
		if len(said) != 2 || !strings.Contains(said[0], "cannot run on a host under a root prefix") || said[0] != said[1] {
			t.Errorf("then said %v", said)
		}
		return
	}
	if want := []string{`"c1\n" <nil>`, `"c2\n" <nil>`}; fmt.Sprint(said) != fmt.Sprint(want) {
		t.Errorf("then said %v, want %v", said, want)
	}
	if s1-s0 != 1 || s2-s1 != 2 {
		t.Errorf("sessions: delivery and then %d, stage %d then commit and then; want 1, 2", s1-s0, s2-s1)
	}
}
