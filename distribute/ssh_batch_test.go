package distribute

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// TestSSHBatchOneSession: a batch costs one session whatever it holds —
// server files and files in two homes, writes, inspections, removals —
// and so do staging, committing and aborting the files of one host.
func TestSSHBatchOneSession(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	ctx := context.Background()
	onLab(t, host, `printf same > /etc/pacemaker/insync; chown hacluster:haclient /etc/pacemaker/insync; chmod 600 /etc/pacemaker/insync
mkdir -m 700 /home/bob/.pcmkeys; printf old > /home/bob/.pcmkeys/old; chown -R bob:bob /home/bob/.pcmkeys`)
	sessions := func(what string, want int64, do func()) {
		t.Helper()
		before := h.sessions.Load()
		do()
		if got := h.sessions.Load() - before; got != want {
			t.Errorf("%s took %d sessions, want %d", what, got, want)
		}
	}
	insync := authkeyFile("same")
	insync.Path = "/etc/pacemaker/insync"
	jobs := []Job{
		{File: authkeyFile("k"), Do: Put},
		{File: insync, Do: Converge, Sweep: true},
		{File: File{Path: "~/.pcmkeys/a", Content: []byte("a"), Owner: "alice", Mode: 0o600}, Do: Converge, Sweep: true},
		{File: File{Path: "~/.pcmkeys/b", Content: []byte("b"), Owner: "alice", Mode: 0o400}, Do: Put},
		{File: File{Path: "~/.pcmkeys/old", Owner: "bob"}, Do: RemoveOwn},
		{File: File{Path: "~/.pcmkeys/c", Content: []byte("c"), Owner: "bob", Mode: 0o600}, Do: Converge},
		{Do: Run, Command: "cat /home/bob/.pcmkeys/c"},
	}
	sessions("a batch of six files and a command", 1, func() {
		for i, o := range Apply(ctx, h, jobs) {
			if o.Err != nil || o.Wrote != (i != 1 && i != 4 && i != 6) || o.Removed != (i == 4) || o.Output != map[bool]string{true: "c\n"}[i == 6] {
				t.Errorf("job %d: %+v", i, o)
			}
		}
	})
	if got := onLab(t, host, "cat /etc/pacemaker/authkey /home/alice/.pcmkeys/a /home/alice/.pcmkeys/b /home/bob/.pcmkeys/c; ls -A /home/bob/.pcmkeys"); got != "kabcc\n" {
		t.Errorf("the host holds %q", got)
	}
	// A file in a home that fails (deploy's ~/.pcmkeys a link), then a
	// command: one session still, and the command not run.
	onLab(t, host, `cd /home/deploy; mkdir -m 700 elsewhere; ln -s elsewhere .pcmkeys; chown -h deploy:deploy elsewhere .pcmkeys`)
	sessions("a file in a home that failed, then a command", 1, func() {
		o := Apply(ctx, h, []Job{{File: File{Path: "~/.pcmkeys/d", Content: []byte("d"), Owner: "deploy", Mode: 0o600}, Do: Put}, {Do: Run, Command: "touch /root/ran"}})
		if !errors.Is(o[0].Err, ErrUnsafe) || !errors.Is(o[1].Err, ErrNotRun) {
			t.Errorf("after a file in a home that failed: %v; %v", o[0].Err, o[1].Err)
		}
	})
	if got := onLab(t, host, "ls -A /home/deploy/elsewhere; test -e /root/ran && echo ran || :"); got != "" {
		t.Errorf("the command ran, or deploy's link was followed: %q", got)
	}
	files := []File{authkeyFile("k2"), {Path: "~/.pcmkeys/a", Content: []byte("a2"), Owner: "alice", Mode: 0o600}, {Path: "~/.pcmkeys/c", Content: []byte("c2"), Owner: "bob", Mode: 0o600}}
	var staged []Staged
	sessions("staging three files", 1, func() {
		var err error
		if staged, err = StageAll(ctx, h, files); err != nil || len(staged) != 3 {
			t.Fatalf("stage: %d, %v", len(staged), err)
		}
	})
	sessions("committing them, then a command", 1, func() {
		if n, o, err := CommitAllThen(ctx, h, staged, Job{Do: Run, Command: "cat /etc/pacemaker/authkey"}); n != 3 || err != nil || len(o) != 1 || o[0].Output != "k2\n" {
			t.Errorf("commit: %d, %v, then %+v", n, err, o)
		}
	})
	sessions("aborting them once committed", 0, func() {
		if err := AbortAll(ctx, h, staged); err != nil {
			t.Error(err)
		}
	})
	staged, _ = StageAll(ctx, h, files)
	sessions("aborting three staged files", 1, func() {
		if err := AbortAll(ctx, h, staged); err != nil {
			t.Error(err)
		}
	})
	if got := onLab(t, host, "cat /etc/pacemaker/authkey /home/alice/.pcmkeys/a /home/bob/.pcmkeys/c; ls -A /etc/pacemaker /home/alice/.pcmkeys /home/bob/.pcmkeys | grep -c '^\\.' || :"); got != "k2a2c20\n" {
		t.Errorf("the host holds %q", got)
	}
}

// TestSSHBatchStopped: a batch whose remote command is stopped mid-write
// ends within the command timeout with ErrTimeout for every file it had
// not finished, and the temporary files it may have left are removed over
// a fresh connection, the stopped command killed first.
func TestSSHBatchStopped(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	d := labDialer(t, lab, func(c *SSHConfig) { c.CommandTimeout = labTimeout })
	ctx := context.Background()
	h := labOpen(t, d, host)
	if err := Write(ctx, h, authkeyFile("old key")); err != nil {
		t.Fatal(err)
	}
	installFreeze(t, host)
	onLab(t, host, "touch /root/freeze")
	start := time.Now()
	out := Apply(ctx, h, []Job{
		{File: authkeyFile("new key"), Do: Put},
		{File: File{Path: "~/.pcmkeys/k", Content: []byte("k"), Owner: "alice", Mode: 0o600}, Do: Converge},
	})
	within(t, "a frozen batch", time.Since(start), labTimeout+closeGrace+8*time.Second)
	for i, o := range out {
		if !errors.Is(o.Err, ErrTimeout) || o.Wrote {
			t.Errorf("job %d of a frozen batch: %+v", i, o)
		}
	}
	if got := onLab(t, host, "ls -A /etc/pacemaker /home/alice; cat /etc/pacemaker/authkey"); got != "/etc/pacemaker:\nauthkey\n\n/home/alice:\nold key" {
		t.Errorf("after the frozen batch: %q", got)
	}
	// Staging: the same through StageAll.
	h2 := labOpen(t, d, host)
	if s, err := StageAll(ctx, h2, []File{authkeyFile("staged"), authkeyFile("staged too")}); !errors.Is(err, ErrTimeout) || len(s) != 0 {
		t.Errorf("a frozen stage: %d staged, %v", len(s), err)
	}
	onLab(t, host, "rm /root/freeze")
	for _, p := range hostProcs(t, host, "") {
		if p != host.PID() {
			syscallCont(p)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if got := onLab(t, host, "ls -A /etc/pacemaker /home/alice; cat /etc/pacemaker/authkey"); got != "/etc/pacemaker:\nauthkey\n\n/home/alice:\nold key" {
		t.Errorf("after the stopped commands resumed: %q", got)
	}
}

// TestParseBatch: what a host answers is read record by record, never
// trusted: a line naming no record of the batch, or malformed, is only
// text; text is escaped; a record without an end has no answer.
func TestParseBatch(t *testing.T) {
	h := &SSHHost{name: "h"}
	var b batchOut
	b.answers = make([]answer, 4)
	b.parse(":0 at write\n:0 did written\n:0 end 0\n" +
		":1 at commit\nmv: \x1b]0;pwned\x07 no\n:1 err 10 /x is a symbolic link\n:1 end 10\n" +
		":2 at inspect\n:2 path /y\n:2 state file 0 0 600 1 root root -\n:9 end 0\n:x end 0\n" +
		":3 end 3\n")
	if err := b.err(h, 0, "write", "/w", nil); err != nil || b.answers[0].did != "written" {
		t.Errorf("record 0: %v %+v", err, b.answers[0])
	}
	err := b.err(h, 1, "write", "/x", nil)
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), `mv: \x1b]0;pwned\a no`) || !strings.Contains(err.Error(), "commit /x on h") {
		t.Errorf("record 1: %v", err)
	}
	err = b.err(h, 2, "inspect", "/y", nil)
	if err == nil || !strings.Contains(err.Error(), "no answer") || !strings.Contains(err.Error(), ":9 end 0") {
		t.Errorf("record 2, never ended: %v", err)
	}
	if st, err := b.state(2, "/y"); err != nil || !st.Regular || st.Path != "/y" {
		t.Errorf("record 2's state: %+v %v", st, err)
	}
	if err := b.err(h, 3, "remove", "/z", ErrTimeout); err == nil || errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "exited 3") {
		t.Errorf("record 3, ended 3: %v", err)
	}
	b.answers[2].state = "file 0 0 600 1 root"
	if _, err := b.state(2, "/y"); err == nil {
		t.Error("a short state line was read")
	}
	if err := b.err(h, 2, "inspect", "/y", ErrTimeout); !errors.Is(err, ErrTimeout) {
		t.Errorf("record 2 when the session timed out: %v", err)
	}
}

// TestSSHBatchCommitKeepsAccount: a batch's commit is checked against the
// account its stage found and gave the file to, without looking it up
// again (the lookups are the stage's); the one-file commit looks it up.
func TestSSHBatchCommitKeepsAccount(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	ctx := context.Background()
	files := []File{authkeyFile("k"), {Path: "~/.pcmkeys/a", Content: []byte("a"), Owner: "alice", Mode: 0o600}}
	staged, err := StageAll(ctx, h, files)
	if err != nil {
		t.Fatal(err)
	}
	one, err := h.Stage(ctx, File{Path: "~/.pcmkeys/b", Content: []byte("b"), Owner: "alice", Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	// The accounts are gone from the name service now.
	onLab(t, host, `sed -i '/^alice:/d; /^hacluster:/d' /etc/passwd`)
	if n, err := CommitAll(ctx, h, staged); n != 2 || err != nil {
		t.Errorf("commit: %d, %v", n, err)
	}
	if got := onLab(t, host, "stat -c '%u:%g %a' /etc/pacemaker/authkey /home/alice/.pcmkeys/a; cat /home/alice/.pcmkeys/a"); got != "189:189 600\n2001:2001 600\na" {
		t.Errorf("committed: %q", got)
	}
	if err := one.Commit(ctx); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("the one-file commit: %v, want the owner looked up (and not found)", err)
	}
}

// TestSSHBatchOwnerCannotAnswerForOthers: whatever a process run as a
// file's owner says (whoever controls the account controls the run that
// works its files) passes only for that owner's records: it answers for
// no other record of the batch, and gives root no account.
func TestSSHBatchOwnerCannotAnswerForOthers(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	ctx := context.Background()
	// alice's sha256sum says, on stderr, what her run should not be
	// believed about: a removal of bob's file, a failure of root's, an
	// account of root's.
	onLab(t, host, `set -e
cp /usr/bin/sha256sum /home/sha256sum.real
cat > /home/sha256sum.forge <<'WRAP'
#!/bin/sh
if [ "$(id -u)" = 2001 ]; then printf ':0 err 10 forged\n:0 account 0:0:/root\n:1 account 0:0:/root\n:2 did removed\n:2 end 0\n' >&2; fi
exec /home/sha256sum.real "$@"
WRAP
chmod 755 /home/sha256sum.forge /home/sha256sum.real
mount --bind /home/sha256sum.forge /usr/bin/sha256sum
mkdir -m 700 /home/bob/.pcmkeys; chown bob:bob /home/bob/.pcmkeys; printf root > /home/bob/.pcmkeys/k`)
	out := Apply(ctx, h, []Job{
		{File: authkeyFile("k"), Do: Put},
		{File: File{Path: "~/.pcmkeys/a", Content: []byte("a"), Owner: "alice", Mode: 0o600}, Do: Converge},
		{File: File{Path: "~/.pcmkeys/k", Owner: "bob"}, Do: RemoveOwn},
	})
	if out[0].Err != nil || !out[0].Wrote || out[1].Err != nil || !out[1].Wrote {
		t.Errorf("the writes: %+v, %+v", out[0], out[1])
	}
	if o := out[2]; o.Err != nil || o.Removed || o.State.Owner != "root" {
		t.Errorf("bob's file owned by root: %+v; want it left alone, as bob's run said", o)
	}
	if got := onLab(t, host, "cat /home/bob/.pcmkeys/k"); got != "root" {
		t.Errorf("bob's file holds %q", got)
	}
	s, err := StageAll(ctx, h, []File{authkeyFile("k2"), {Path: "~/.pcmkeys/a", Content: []byte("a2"), Owner: "alice", Mode: 0o600}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"189:189:/var/lib/pacemaker", "2001:2001:/home/alice"} {
		if acct := s[i].(*sshStaged).account; acct != want {
			t.Errorf("staged file %d's account is %q, want %q, the one root found", i, acct, want)
		}
	}
	if n, err := CommitAll(ctx, h, s); n != 2 || err != nil {
		t.Errorf("commit: %d, %v", n, err)
	}
	if got := onLab(t, host, "stat -c %U /home/alice/.pcmkeys/a; cat /etc/pacemaker/authkey /home/alice/.pcmkeys/a"); got != "alice\nk2a2" {
		t.Errorf("committed: %q", got)
	}
}

// TestSSHBatchOwnerReadsOnlyItsContent: a run as a file's owner gets its
// own records' contents on its stdin and nothing else: the contents after
// them (another user's key) are not there for a process of the owner's to
// read.
func TestSSHBatchOwnerReadsOnlyItsContent(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	ctx := context.Background()
	// alice's stat reads what is left on its stdin, the stdin of her run.
	onLab(t, host, `set -e
cp /usr/bin/stat /home/stat.real
cat > /home/stat.steal <<'WRAP'
#!/bin/sh
if [ "$(id -u)" = 2001 ]; then timeout 0.5 cat >> /home/alice/stolen || :; fi
exec /home/stat.real "$@"
WRAP
chmod 755 /home/stat.steal /home/stat.real
mount --bind /home/stat.steal /usr/bin/stat`)
	secret := "bob's secret key"
	out := Apply(ctx, h, []Job{
		{File: File{Path: "~/.pcmkeys/a", Content: []byte("alice's key"), Owner: "alice", Mode: 0o600}, Do: Put},
		{File: File{Path: "~/.pcmkeys/b", Content: []byte(secret), Owner: "bob", Mode: 0o600}, Do: Put},
		{File: authkeyFile(secret), Do: Put},
	})
	// alice's own write is hers to spoil; the others are not.
	for i, o := range out[1:] {
		if o.Err != nil || !o.Wrote {
			t.Errorf("job %d: %+v", i+1, o)
		}
	}
	got := onLab(t, host, "cat /home/bob/.pcmkeys/b; echo; cat /etc/pacemaker/authkey; echo; cat /home/alice/stolen 2>/dev/null || :")
	if !strings.HasPrefix(got, secret+"\n"+secret+"\n") || strings.Contains(strings.SplitN(got, "\n", 3)[2], "bob") {
		t.Errorf("the host holds %q: bob's key written, and not in what alice's run read", got)
	}
}
