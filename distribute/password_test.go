package distribute_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/distribute/hosttest"
)

// TestSetPassLocal and TestSetPassSSH: a password job, the same on a host
// that works a batch one job at a time (Local, under a root prefix: it
// runs no command and sets no password) and on one that works it in one
// round trip (SSH): the same refusals, word for word, before anything is
// done; never after a job that failed; after a commit, a chain of
// password, marker and command that a failed commit never starts and a
// bad password refuses before anything is committed.
func TestSetPassLocal(t *testing.T) { testSetPass(t, localHosts) }

func TestSetPassSSH(t *testing.T) { testSetPass(t, sshHosts(t)) }

// The lab's passwords: spaces, a backslash and a quote of the shell's are
// part of them (no single quote: the fixture's scripts quote them so).
const (
	labPassword  = ` lab \password "one" $HOME `
	labPassword2 = `lab password two`
)

func setPass(user, password string) distribute.Job {
	return distribute.Job{Do: distribute.SetPass, User: user, Password: []byte(password)}
}

func testSetPass(t *testing.T, newHost func(t *testing.T) (distribute.Host, hosttest.Fixture)) {
	h, fx := newHost(t)
	ctx := context.Background()
	_, remote := h.(distribute.Batcher)
	// shadow is hacluster's shadow entry (SSH), and whether it is the hash
	// of a password (crypt(3), whatever method chpasswd chose).
	shadow := func() string {
		if !remote {
			return ""
		}
		return fx.Sh(t, `grep '^hacluster:' /etc/shadow`)
	}
	verifies := func(password string) bool {
		return fx.Sh(t, `perl -e 'open(F, "/etc/shadow") or die; while (<F>) { @e = split /:/; print((crypt($ARGV[0], $e[1]) eq $e[1]) ? "yes" : "no") if $e[0] eq "hacluster" }' -- '`+password+`'`) == "yes"
	}
	run := distribute.Job{Do: distribute.Run, Command: `touch /root/ran`}
	ran := func() bool { return fx.Sh(t, `ls -A "$R/root"`) != "" }
	shown := func(err error) string {
		if err == nil {
			return ""
		}
		return strings.ReplaceAll(err.Error(), "host "+h.Name()+":", "host H:")
	}
	before := shadow()

	// Refused before anything is sent, in the same words everywhere, with
	// no part of the password in them; the command after it is not run.
	bad := "host H: set the password of hacluster: a password must be non-empty, without ':', newlines or NUL"
	for _, c := range []struct {
		job  distribute.Job
		want string
	}{
		{setPass("hacluster", ""), bad},
		{setPass("hacluster", "sec:ret"), bad},
		{setPass("hacluster", "sec\nret"), bad},
		{setPass("hacluster", "sec\rret"), bad},
		{setPass("hacluster", "sec\x00ret"), bad},
		{setPass("bad user", "secret"), "host H: set a password: "},
		{setPass("", "secret"), "host H: set a password: "},
	} {
		out := distribute.Apply(ctx, h, []distribute.Job{c.job, run})
		if got := shown(out[0].Err); !strings.HasPrefix(got, c.want) || strings.Contains(got, "sec") {
			t.Errorf("%q for %q: %q, want %q", c.job.Password, c.job.User, got, c.want)
		}
		if !errors.Is(out[1].Err, distribute.ErrNotRun) {
			t.Errorf("the command after a refused password: %v", out[1].Err)
		}
	}
	if shadow() != before || ran() {
		t.Fatal("a refused password changed the host")
	}

	// After a file that failed: not set.
	fx.Sh(t, `ln -s authkey "$R/etc/pacemaker/link"`)
	out := distribute.Apply(ctx, h, []distribute.Job{{File: srv("link", "k"), Do: distribute.Put}, setPass("hacluster", labPassword), run})
	if !errors.Is(out[0].Err, distribute.ErrUnsafe) || !errors.Is(out[1].Err, distribute.ErrNotRun) || !errors.Is(out[2].Err, distribute.ErrNotRun) {
		t.Errorf("after a refused write: %v; %v; %v", out[0].Err, out[1].Err, out[2].Err)
	}
	if got := shown(out[1].Err); got != "host H: set the password of hacluster: not run: a job before it failed" {
		t.Errorf("a password not set: %q", got)
	}
	if shadow() != before || ran() {
		t.Fatal("a password job after a refused write changed the host")
	}

	// After a file in an owner's home that failed, then one of root's:
	// not set, over SSH (where an owner's run works her file) as one at a
	// time.
	homeFails(t, fx)
	out = distribute.Apply(ctx, h, []distribute.Job{{File: cli("alice", "k", "a1"), Do: distribute.Put}, {File: srv("authkey", "k0"), Do: distribute.Put}, setPass("hacluster", labPassword), run})
	if !errors.Is(out[0].Err, distribute.ErrUnsafe) || out[1].Err != nil || !errors.Is(out[2].Err, distribute.ErrNotRun) || !errors.Is(out[3].Err, distribute.ErrNotRun) {
		t.Errorf("after a refused write in a home: %v; %v; %v; %v", out[0].Err, out[1].Err, out[2].Err, out[3].Err)
	}
	if got := shown(out[2].Err); got != "host H: set the password of hacluster: not run: a job before it failed" {
		t.Errorf("a password not set after a home: %q", got)
	}
	if shadow() != before || ran() {
		t.Fatal("a password job after a refused write in a home changed the host")
	}

	// After a file written: set, then the command (SSH); a host under a
	// root prefix sets none.
	out = distribute.Apply(ctx, h, []distribute.Job{{File: srv("authkey", "k1"), Do: distribute.Put}, setPass("hacluster", labPassword), run})
	switch {
	case out[0].Err != nil:
		t.Fatal(out[0].Err)
	case remote && (out[1].Err != nil || out[2].Err != nil || !ran()):
		t.Errorf("after a write: %v; %v", out[1].Err, out[2].Err)
	case remote && (shadow() == before || !verifies(labPassword) || verifies(labPassword2)):
		t.Errorf("hacluster's password was not set: %q", shadow())
	case !remote && (!errors.Is(out[1].Err, distribute.ErrNoExec) || !errors.Is(out[2].Err, distribute.ErrNotRun)):
		t.Errorf("on a host under a root prefix: %v; %v", out[1].Err, out[2].Err)
	}
	fx.Sh(t, `rm -f "$R/root/ran"`)
	before = shadow()

	// After a commit: the password, then the marker that records it, then
	// the command, each only once all before it succeeded.
	marker := srv("password-marker", "set")
	then := []distribute.Job{setPass("hacluster", labPassword2), {File: marker, Do: distribute.Put}, {Do: distribute.Run, Command: `cat /etc/pacemaker/password-marker; touch /root/ran`}}
	s, err := distribute.StageAll(ctx, h, []distribute.File{srv("cib-credentials", "c1")})
	if err != nil {
		t.Fatal(err)
	}
	n, outs, err := distribute.CommitAllThen(ctx, h, s, then...)
	if n != 1 || err != nil || len(outs) != 3 {
		t.Fatalf("commit: %d, %v, %d outcomes", n, err, len(outs))
	}
	markerIs := func() string { return fx.Sh(t, `cat "$R/etc/pacemaker/password-marker" 2>/dev/null || :`) }
	if remote {
		if outs[0].Err != nil || outs[1].Err != nil || !outs[1].Wrote || outs[2].Err != nil || outs[2].Output != "set\n" {
			t.Errorf("after the commit: %+v", outs)
		}
		if !verifies(labPassword2) || markerIs() != "set" || !ran() {
			t.Errorf("after the commit: password set %v, marker %q, ran %v", verifies(labPassword2), markerIs(), ran())
		}
	} else {
		if !errors.Is(outs[0].Err, distribute.ErrNoExec) || !errors.Is(outs[1].Err, distribute.ErrNotRun) || !errors.Is(outs[2].Err, distribute.ErrNotRun) {
			t.Errorf("after the commit, under a root prefix: %+v", outs)
		}
		if markerIs() != "" || ran() {
			t.Error("a job ran after a password job that failed")
		}
	}
	fx.Sh(t, `rm -f "$R/root/ran" "$R/etc/pacemaker/password-marker"`)
	before = shadow()

	// A failed commit: nothing after it.
	s, err = distribute.StageAll(ctx, h, []distribute.File{srv("cib-credentials", "c2")})
	if err != nil {
		t.Fatal(err)
	}
	fx.Sh(t, `cd "$R/etc/pacemaker"; rm cib-credentials; ln -s link cib-credentials`)
	then[0] = setPass("hacluster", labPassword)
	n, outs, err = distribute.CommitAllThen(ctx, h, s, then...)
	if n != 0 || !errors.Is(err, distribute.ErrUnsafe) {
		t.Errorf("commit over a link: %d, %v", n, err)
	}
	for i, o := range outs {
		if !errors.Is(o.Err, distribute.ErrNotRun) || o.Wrote {
			t.Errorf("job %d after a failed commit: %+v", i, o)
		}
	}
	if shadow() != before || markerIs() != "" || ran() {
		t.Error("a job ran after a failed commit")
	}
	if err := distribute.AbortAll(ctx, h, s); err != nil {
		t.Fatal(err)
	}
	fx.Sh(t, `cd "$R/etc/pacemaker"; rm cib-credentials; printf c1 > cib-credentials; chown $HAC:$HACG cib-credentials`)

	// A bad password: refused before anything is committed.
	s, err = distribute.StageAll(ctx, h, []distribute.File{srv("cib-credentials", "c3")})
	if err != nil {
		t.Fatal(err)
	}
	then[0] = setPass("hacluster", "sec:ret")
	n, outs, err = distribute.CommitAllThen(ctx, h, s, then...)
	if n != 0 || shown(err) != bad || shown(outs[0].Err) != bad || !errors.Is(outs[1].Err, distribute.ErrNotRun) || !errors.Is(outs[2].Err, distribute.ErrNotRun) {
		t.Errorf("a bad password after a commit: %d, %v, %+v", n, err, outs)
	}
	if got := fx.Sh(t, `cd "$R/etc/pacemaker"; cat cib-credentials; echo; ls -A | grep -c '^\.cib-credentials' || :`); got != "c1\n1\n" {
		t.Errorf("after a bad password: %q, want the old file and the new one still staged", got)
	}
	if err := distribute.AbortAll(ctx, h, s); err != nil {
		t.Fatal(err)
	}
	if shadow() != before || markerIs() != "" || ran() {
		t.Error("a job ran after a bad password")
	}
}
