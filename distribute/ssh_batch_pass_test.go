package distribute

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/distribute/internal/remote"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
	"golang.org/x/crypto/ssh"
)

// secretPassword is a password no process, file or log on the machine
// holds by chance.
func secretPassword(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pw " + hex.EncodeToString(b)
}

// passwordIs reports whether user's shadow entry on host is the hash of
// password (crypt(3), whatever method chpasswd chose). The password goes
// to perl on its stdin.
func passwordIs(t *testing.T, host *sshlab.Host, user, password string) bool {
	t.Helper()
	cmd, err := host.Command(context.Background(), "perl", "-e", `chomp($p = <STDIN>); open(F, "/etc/shadow") or die; while (<F>) { @e = split /:/; print((crypt($p, $e[1]) eq $e[1]) ? "yes" : "no") if $e[0] eq $ARGV[0] }`, user)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("perl on %s: %v", host.Name, err)
	}
	return string(out) == "yes"
}

// spyChpasswd puts a chpasswd on host that notes, before it runs the real
// one, where its stdin comes from, who runs it, the cib-credentials file
// and what /etc/pacemaker holds; then it waits for /root/go (at most 20
// s) while the test looks at the host's processes.
func spyChpasswd(t *testing.T, host *sshlab.Host) {
	onLab(t, host, `set -e
cp /usr/sbin/chpasswd /root/chpasswd.real
cat > /root/chpasswd.spy <<'WRAP'
#!/bin/sh
readlink /proc/self/fd/0 > /root/stdin
id -u > /root/uid
cat /etc/pacemaker/cib-credentials > /root/cib 2>/dev/null || :
ls -A /etc/pacemaker > /root/ls
touch /root/waiting
n=0
while [ ! -e /root/go ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n + 1)); done
exec /root/chpasswd.real "$@"
WRAP
chmod 755 /root/chpasswd.spy
mount --bind /root/chpasswd.spy /usr/sbin/chpasswd`)
}

// hostShows returns the arguments and environment of every process in
// host's mount namespace.
func hostShows(t *testing.T, host *sshlab.Host) string {
	t.Helper()
	var b strings.Builder
	for _, pid := range hostProcs(t, host) {
		for _, f := range []string{"cmdline", "environ"} {
			data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
			b.Write(data)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// TestSSHBatchPasswordAfterCommit: a node's commit, hacluster's password,
// the marker that records it and a command, in one session, in that
// order: chpasswd runs as root once the new cib-credentials is in place
// and before the marker, reading the password from a pipe; the password is
// in no process's arguments or environment on the host while it runs, and
// in no error or log.
func TestSSHBatchPasswordAfterCommit(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{LogLevel: "DEBUG3"})
	host := lab.Hosts[0]
	var logs bytes.Buffer
	h := labOpen(t, labDialer(t, lab, func(c *SSHConfig) {
		c.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}), host)
	ctx := context.Background()
	spyChpasswd(t, host)
	secret := secretPassword(t)
	before := onLab(t, host, "grep ^hacluster: /etc/shadow")

	marker := authkeyFile("recorded")
	marker.Path = "/etc/pacemaker/password-marker"
	cib := authkeyFile("new credentials")
	cib.Path = "/etc/pacemaker/cib-credentials"
	staged, err := StageAll(ctx, h, []File{cib})
	if err != nil {
		t.Fatal(err)
	}
	sessions := h.sessions.Load()
	var n int
	var outs []Outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, outs, err = CommitAllThen(ctx, h, staged,
			Job{Do: SetPass, User: "hacluster", Password: []byte(secret)},
			Job{File: marker, Do: Put},
			Job{Do: Run, Command: "cat /etc/pacemaker/password-marker; grep -c '^hacluster:[$]' /etc/shadow"})
	}()
	// What the host shows while chpasswd waits to run.
	root := fmt.Sprintf("/proc/%d/root/root/", host.PID())
	for i := 0; i < 400; i++ {
		if _, err := os.Stat(root + "waiting"); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	procs := hostShows(t, host)
	if err := os.WriteFile(root+"go", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	<-done
	if got := h.sessions.Load() - sessions; got != 1 {
		t.Errorf("commit, password, marker and command took %d sessions, want 1", got)
	}
	if n != 1 || err != nil || len(outs) != 3 {
		t.Fatalf("commit: %d, %v, %d outcomes", n, err, len(outs))
	}
	if outs[0].Err != nil || outs[1].Err != nil || !outs[1].Wrote || outs[2].Err != nil || outs[2].Output != "recorded1\n" {
		t.Errorf("after the commit: %+v", outs)
	}
	if onLab(t, host, "grep ^hacluster: /etc/shadow") == before || !passwordIs(t, host, "hacluster", secret) || passwordIs(t, host, "hacluster", secret+"x") {
		t.Error("hacluster's password is not the one sent")
	}
	seen := onLab(t, host, "cat /root/uid /root/stdin /root/cib; echo; cat /root/ls")
	if want := "0\npipe:"; !strings.HasPrefix(seen, want) || !strings.Contains(seen, "\nnew credentials\ncib-credentials\n") || strings.Contains(seen, "password-marker") {
		t.Errorf("chpasswd saw: %q; want it run as root, reading a pipe, with the new cib-credentials in place and no marker yet", seen)
	}
	if !strings.Contains(procs, "setpass") || !strings.Contains(procs, "chpasswd") {
		t.Fatalf("the process listing taken while chpasswd ran shows neither the batch nor chpasswd:\n%s", procs)
	}
	sshd, err := host.Log()
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"the host's process listing": procs, "the client's log": logs.String(), "sshd's log": sshd, "the outcomes": fmt.Sprintf("%+v %v", outs, err)} {
		if strings.Contains(text, secret) || strings.Contains(text, hex.EncodeToString([]byte(secret))) {
			t.Errorf("%s holds the password", what)
		}
	}
}

// TestSSHBatchPasswordRefusedBeforeSending: a password that chpasswd's
// line cannot carry costs no session, alone or after a commit, where it
// leaves the staged files to be committed or aborted.
func TestSSHBatchPasswordRefusedBeforeSending(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	ctx := context.Background()
	staged, err := StageAll(ctx, h, []File{authkeyFile("k")})
	if err != nil {
		t.Fatal(err)
	}
	sessions := h.sessions.Load()
	bad := Job{Do: SetPass, User: "hacluster", Password: []byte("sec\nret")}
	if out := Apply(ctx, h, []Job{bad, {Do: Run, Command: "true"}}); out[0].Err == nil || !errors.Is(out[1].Err, ErrNotRun) {
		t.Errorf("a bad password: %v; %v", out[0].Err, out[1].Err)
	}
	if n, outs, err := CommitAllThen(ctx, h, staged, bad); n != 0 || err == nil || outs[0].Err == nil || strings.Contains(err.Error(), "ret") {
		t.Errorf("a bad password after a commit: %d, %v, %+v", n, err, outs)
	}
	image := labOpen(t, labDialer(t, lab, nil), host)
	image.root = "/srv/image"
	if out := Apply(ctx, image, []Job{{Do: SetPass, User: "hacluster", Password: []byte("secret")}}); !errors.Is(out[0].Err, ErrNoExec) {
		t.Errorf("a password under a root prefix: %v", out[0].Err)
	}
	if got := h.sessions.Load() - sessions + image.sessions.Load(); got != 0 {
		t.Errorf("refused passwords took %d sessions", got)
	}
	if n, err := CommitAll(ctx, h, staged); n != 1 || err != nil {
		t.Errorf("the commit after a refused password: %d, %v", n, err)
	}
}

// TestSSHBatchPasswordChpasswdFails: what chpasswd says of a password it
// does not set is in the job's error (not the password); nothing after
// it runs.
func TestSSHBatchPasswordChpasswdFails(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	secret := secretPassword(t)
	out := Apply(context.Background(), h, []Job{{Do: SetPass, User: "nosuch", Password: []byte(secret)}, {Do: Run, Command: "touch /root/ran"}})
	if err := out[0].Err; err == nil || !strings.Contains(err.Error(), "set the password of nosuch with chpasswd") || !strings.Contains(err.Error(), "nosuch") || strings.Contains(err.Error(), secret) {
		t.Errorf("an unknown user's password: %v", err)
	}
	t.Logf("chpasswd said: %v", out[0].Err)
	if !errors.Is(out[1].Err, ErrNotRun) || onLab(t, host, "ls -A /root") != "" {
		t.Errorf("the command after a failed password: %v", out[1].Err)
	}
}

// TestSSHBatchPasswordCutShort: a password line cut short (the batch's
// stdin ends before its newline) or not of the length the record gives
// sets nothing: chpasswd would set what it got.
func TestSSHBatchPasswordCutShort(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	before := onLab(t, host, "grep ^hacluster: /etc/shadow")
	send := func(stdin, size string) string {
		t.Helper()
		c, err := h.conn()
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr limitedBuffer
		stdout.max, stderr.max = maxOutput, maxOutput
		cmd := remote.Command("batch", "", "", "0", "", "setpass", "", "hacluster", "", "600", "", size, "")
		var ee *ssh.ExitError
		if err := h.session(context.Background(), c, 0, cmd, remote.Input(strings.NewReader(stdin)), &stdout, &stderr); err != nil && !errors.As(err, &ee) {
			t.Fatalf("%v: %s", err, stderr.String())
		}
		return stdout.String()
	}
	for _, c := range []struct{ stdin, size string }{
		{"cutshort", "9"},       // no newline: the stream ended first
		{"cut\nshort\n", "10"},  // a line shorter than the record
		{"cutshort\n", "12"},    // a line shorter than the record, then the end
		{"cutshort\nmore", "9"}, // (the length is right: see below)
	} {
		got := send(c.stdin, c.size)
		set := onLab(t, host, "grep ^hacluster: /etc/shadow") != before
		if c.stdin == "cutshort\nmore" {
			if got != ":0 end 0\n" || !set || !passwordIs(t, host, "hacluster", "cutshort") {
				t.Fatalf("a whole line: %q, set %v", got, set)
			}
			continue
		}
		if got != ":0 err 16 the password was not read whole: not set\n:0 end 16\n" || set {
			t.Errorf("%q of %s bytes: %q, set %v", c.stdin, c.size, got, set)
		}
	}
}

// TestSSHBatchPasswordReadByNoOneElse: the password on the batch's stdin
// is read by root's shell alone: not by a command run before it (its
// stdin is /dev/null), nor by a process of a file owner's whose records
// come first (it reads its own contents from a pipe root fills).
func TestSSHBatchPasswordReadByNoOneElse(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	ctx := context.Background()
	// alice's stat, once her file is written (the stat that verifies it
	// after the rename), reads what is left on its stdin, the stdin of her
	// run: where the password would follow her content were it the
	// batch's. Her write ends well, so the password is worked after it (a
	// failed one of hers would stop it: ErrNotRun).
	onLab(t, host, `set -e
cp /usr/bin/stat /home/stat.real
cat > /home/stat.steal <<'WRAP'
#!/bin/sh
if [ "$(id -u)" = 2001 ] && [ "$2" = '%u %g %a' ]; then
	touch /home/alice/tried
	timeout 0.5 cat >> /home/alice/stolen || :
fi
exec /home/stat.real "$@"
WRAP
chmod 755 /home/stat.steal /home/stat.real
mount --bind /home/stat.steal /usr/bin/stat`)
	secret := secretPassword(t)
	out := Apply(ctx, h, []Job{
		{Do: Run, Command: "timeout 0.5 cat > /root/stolen || :"},
		{File: File{Path: "~/.pcmkeys/a", Content: []byte("alice's key"), Owner: "alice", Mode: 0o600}, Do: Put},
		{Do: SetPass, User: "hacluster", Password: []byte(secret)},
	})
	if out[0].Err != nil || out[1].Err != nil || out[2].Err != nil {
		t.Errorf("the command: %v; alice's file: %v; the password: %v", out[0].Err, out[1].Err, out[2].Err)
	}
	if onLab(t, host, "test -e /home/alice/tried && echo tried || :") != "tried\n" {
		t.Error("alice's stat did not try to read her run's stdin")
	}
	if !passwordIs(t, host, "hacluster", secret) {
		t.Error("the password was not set")
	}
	if got := onLab(t, host, "cat /root/stolen /home/alice/stolen 2>/dev/null || :"); strings.Contains(got, secret) {
		t.Errorf("another process read the password: %q", got)
	}
}
