package distribute_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/distribute/hosttest"
)

// batched is a host whose one-file operations all go through the batch
// API (Apply, StageAll, CommitAll, AbortAll), one file per batch: run
// through the host contract, it holds the batch path of a transport to
// every case the one-file path meets. Remove, Read, LookupUser and Exec
// stay the host's own.
type batched struct{ distribute.Host }

func (b batched) one(ctx context.Context, j distribute.Job) distribute.Outcome {
	return distribute.Apply(ctx, b.Host, []distribute.Job{j})[0]
}

func (b batched) Inspect(ctx context.Context, path, owner string) (distribute.FileState, error) {
	o := b.one(ctx, distribute.Job{File: distribute.File{Path: path, Owner: owner}, Do: distribute.Look})
	return o.State, o.Err
}

func (b batched) Sweep(ctx context.Context, path, owner string) (int, error) {
	o := b.one(ctx, distribute.Job{File: distribute.File{Path: path, Owner: owner}, Do: distribute.Look, Sweep: true})
	return o.Swept, o.Err
}

// WriteFile makes distribute.Write a batch of one Put.
func (b batched) WriteFile(ctx context.Context, f distribute.File) error {
	return b.one(ctx, distribute.Job{File: f, Do: distribute.Put}).Err
}

func (b batched) Stage(ctx context.Context, f distribute.File) (distribute.Staged, error) {
	s, err := distribute.StageAll(ctx, b.Host, []distribute.File{f})
	if err != nil {
		if len(s) != 0 {
			return nil, fmt.Errorf("a failed batch of one staged %d files", len(s))
		}
		return nil, err
	}
	return batchedStaged{b.Host, s[0]}, nil
}

type batchedStaged struct {
	h distribute.Host
	s distribute.Staged
}

func (s batchedStaged) Commit(ctx context.Context) error {
	n, err := distribute.CommitAll(ctx, s.h, []distribute.Staged{s.s})
	if (err == nil) != (n == 1) {
		return fmt.Errorf("commit of one: %d committed, %v", n, err)
	}
	return err
}

func (s batchedStaged) Abort(ctx context.Context) error {
	return distribute.AbortAll(ctx, s.h, []distribute.Staged{s.s})
}

// The host contract over SSH, every file through the batch path.
func TestContractSSHBatched(t *testing.T) {
	newHost := sshHosts(t)
	hosttest.Run(t, func(t *testing.T) (distribute.Host, hosttest.Fixture) {
		h, fx := newHost(t)
		if _, ok := h.(distribute.Batcher); !ok {
			t.Fatal("an SSH host is not a Batcher")
		}
		return batched{h}, fx
	})
}

// TestBatchLocal and TestBatchSSH: the batch semantics, the same on a
// host that works a batch one file at a time (Local) and on one that
// works it in one round trip (SSH).
func TestBatchLocal(t *testing.T) { batchCases(t, localHosts) }

func TestBatchSSH(t *testing.T) { batchCases(t, sshHosts(t)) }

func batchCases(t *testing.T, newHost func(t *testing.T) (distribute.Host, hosttest.Fixture)) {
	t.Run("Apply", func(t *testing.T) { testApply(t, newHost) })
	t.Run("StageCommitAbort", func(t *testing.T) { testStageCommitAbort(t, newHost) })
}

func srv(name, content string) distribute.File {
	return distribute.File{Path: "/etc/pacemaker/" + name, Content: []byte(content), Owner: "hacluster", Group: "haclient", Mode: 0o600}
}

func cli(owner, name, content string) distribute.File {
	return distribute.File{Path: "~/.pcmkeys/" + name, Content: []byte(content), Owner: owner, Mode: 0o600}
}

// testApply: each job of a batch on its own — a refused or unknown one
// fails alone, and every later file still gets its own content; Converge
// writes only what differs; RemoveOwn removes only the owner's.
func testApply(t *testing.T, newHost func(t *testing.T) (distribute.Host, hosttest.Fixture)) {
	h, fx := newHost(t)
	if !fx.Distinct {
		t.Skip("needs users with distinct ids and files given to them: run as root (CI does)")
	}
	fx.Sh(t, `cd "$R/etc/pacemaker"
printf same > insync; chown $HAC:$HACG insync; chmod 600 insync
printf same > loose; chown $HAC:$HACG loose; chmod 640 loose
ln -s ../passwd link
printf x > .authkey.pcmkeys-0123456789abcdef
printf theirs > theirs
mkdir -m 700 "$R/home/alice/.pcmkeys"; printf k > "$R/home/alice/.pcmkeys/old.key"
chown -R $ALICE:$ALICE "$R/home/alice/.pcmkeys"`)
	ctx := context.Background()
	look := func(path, owner string) distribute.File { return distribute.File{Path: path, Owner: owner} }
	mallory := srv("mallory", "m")
	mallory.Owner = "mallory"
	jobs := []distribute.Job{
		{File: srv("new", "n1"), Do: distribute.Put},
		{File: srv("insync", "same"), Do: distribute.Converge},
		{File: srv("loose", "same"), Do: distribute.Converge, Sweep: true},
		{File: srv("authkey", "ak"), Do: distribute.Converge, Sweep: true},
		{File: srv("link", "over a link"), Do: distribute.Put},
		{File: mallory, Do: distribute.Converge},
		{File: cli("alice", "a.key", "a1"), Do: distribute.Converge},
		{File: cli("bob", "b.key", "b1"), Do: distribute.Put},
		{File: look("~/.pcmkeys/old.key", "alice"), Do: distribute.RemoveOwn},
		{File: look("/etc/pacemaker/theirs", "hacluster"), Do: distribute.RemoveOwn},
		{File: look("/etc/pacemaker/nothing", "hacluster"), Do: distribute.Look},
		{File: cli("alice", "a2.key", "the last one"), Do: distribute.Put},
	}
	out := distribute.Apply(ctx, h, jobs)
	if len(out) != len(jobs) {
		t.Fatalf("%d outcomes for %d jobs", len(out), len(jobs))
	}
	type want struct {
		wrote, removed bool
		swept          int
		err            error
		exists         bool
		owner          string
	}
	wants := []want{
		{wrote: true},
		{exists: true, owner: "hacluster"},
		{wrote: true, exists: true, owner: "hacluster"},
		{wrote: true, swept: 1},
		{err: distribute.ErrUnsafe},
		{err: distribute.ErrUnknownUser},
		{wrote: true},
		{wrote: true},
		{removed: true, exists: true, owner: "alice"},
		{exists: true, owner: "root"},
		{},
		{wrote: true},
	}
	for i, w := range wants {
		o := out[i]
		f := jobs[i].File
		switch {
		case w.err != nil && !errors.Is(o.Err, w.err):
			t.Errorf("job %d (%s): %v, want %v", i, f.Path, o.Err, w.err)
		case w.err != nil && !strings.Contains(o.Err.Error(), h.Name()):
			t.Errorf("job %d (%s): %q does not name the host", i, f.Path, o.Err)
		case w.err == nil && o.Err != nil:
			t.Errorf("job %d (%s): %v", i, f.Path, o.Err)
		}
		if o.Wrote != w.wrote || o.Removed != w.removed || o.Swept != w.swept {
			t.Errorf("job %d (%s): wrote %v removed %v swept %d, want %v %v %d", i, f.Path, o.Wrote, o.Removed, o.Swept, w.wrote, w.removed, w.swept)
		}
		if jobs[i].Do != distribute.Put && w.err == nil && (o.State.Exists != w.exists || o.State.Owner != w.owner) {
			t.Errorf("job %d (%s): state %+v, want exists %v owner %q", i, f.Path, o.State, w.exists, w.owner)
		}
	}
	for _, i := range []int{0, 1, 2, 3, 6, 7, 11} {
		f := jobs[i].File
		path := strings.Replace(f.Path, "~", "/home/"+f.Owner, 1)
		uid, gid := fx.Hacluster, fx.Haclient
		switch f.Owner {
		case "alice":
			uid, gid = fx.Alice, fx.Alice
		case "bob":
			uid, gid = fx.Bob, fx.Bob
		}
		got := fx.Sh(t, `f="$R"`+"'"+path+"'"+`; stat -c '%u:%g %a' -- "$f"; cat -- "$f"`)
		if want := fmt.Sprintf("%d:%d 600\n%s", uid, gid, f.Content); got != want {
			t.Errorf("%s is %q, want %q", path, got, want)
		}
	}
	listing := "a.key\na2.key\n--\nb.key\n--\nauthkey\ninsync\nlink\nloose\nnew\ntheirs\n--\n../passwd\n"
	if got := fx.Sh(t, `cd "$R"; ls -A home/alice/.pcmkeys; echo --; ls -A home/bob/.pcmkeys; echo --; ls -A etc/pacemaker; echo --; readlink etc/pacemaker/link`); got != listing {
		t.Errorf("the host holds\n%swant\n%s", got, listing)
	}
	// Once more: everything is in sync, nothing is written.
	again := []distribute.Job{jobs[1], jobs[2], jobs[3], jobs[6]}
	for i, o := range distribute.Apply(ctx, h, again) {
		if o.Err != nil || o.Wrote || !o.State.Regular {
			t.Errorf("again, job %d (%s): wrote %v, %+v, %v", i, again[i].File.Path, o.Wrote, o.State, o.Err)
		}
	}
}

// testStageCommitAbort: files of one host staged, committed and aborted
// together; a batch stops at the file that fails, and what it staged
// before is handed back to be aborted.
func testStageCommitAbort(t *testing.T, newHost func(t *testing.T) (distribute.Host, hosttest.Fixture)) {
	h, fx := newHost(t)
	if !fx.Distinct {
		t.Skip("needs users with distinct ids and files given to them: run as root (CI does)")
	}
	ctx := context.Background()
	files := func(v string) []distribute.File {
		return []distribute.File{srv("cib-credentials", "cib "+v), cli("alice", "k", "alice "+v), cli("bob", "k", "bob "+v)}
	}
	content := func() string {
		return fx.Sh(t, `cd "$R"; cat etc/pacemaker/cib-credentials; echo; cat home/alice/.pcmkeys/k; echo; cat home/bob/.pcmkeys/k; echo; ls -A etc/pacemaker home/alice/.pcmkeys home/bob/.pcmkeys | grep -c '^\.' || :`)
	}
	s, err := distribute.StageAll(ctx, h, files("1"))
	if err != nil || len(s) != 3 {
		t.Fatalf("stage: %d staged, %v", len(s), err)
	}
	if got := fx.Sh(t, `cd "$R"; ls -A etc/pacemaker home/alice/.pcmkeys home/bob/.pcmkeys | grep -c '^\.' || :`); got != "3\n" {
		t.Errorf("%s temporary files staged, want 3", got)
	}
	if n, err := distribute.CommitAll(ctx, h, s); n != 3 || err != nil {
		t.Fatalf("commit: %d, %v", n, err)
	}
	if got := content(); got != "cib 1\nalice 1\nbob 1\n0\n" {
		t.Errorf("after the commit: %q", got)
	}
	if err := distribute.AbortAll(ctx, h, s); err != nil {
		t.Errorf("abort after commit: %v", err)
	}

	// The second file refused: the first is staged and handed back.
	fx.Sh(t, `ln -sfn k "$R/home/alice/.pcmkeys/k2"`)
	bad := files("2")
	bad[1].Path = "~/.pcmkeys/k2"
	s, err = distribute.StageAll(ctx, h, bad)
	if !errors.Is(err, distribute.ErrUnsafe) || len(s) != 1 || !strings.Contains(err.Error(), "k2") {
		t.Fatalf("stage over a link: %d staged, %v", len(s), err)
	}
	if err := distribute.AbortAll(ctx, h, s); err != nil {
		t.Fatal(err)
	}
	fx.Sh(t, `rm "$R/home/alice/.pcmkeys/k2"`)
	if got := content(); got != "cib 1\nalice 1\nbob 1\n0\n" {
		t.Errorf("after a refused stage and abort: %q", got)
	}

	// The second commit refused (its target became a link): the first
	// is committed, the rest aborted.
	s, err = distribute.StageAll(ctx, h, files("3"))
	if err != nil {
		t.Fatal(err)
	}
	fx.Sh(t, `cd "$R/home/alice/.pcmkeys"; mv k real; ln -s real k`)
	n, err := distribute.CommitAll(ctx, h, s)
	if n != 1 || !errors.Is(err, distribute.ErrUnsafe) {
		t.Fatalf("commit over a link: %d, %v", n, err)
	}
	if err := distribute.AbortAll(ctx, h, s); err != nil {
		t.Fatal(err)
	}
	fx.Sh(t, `cd "$R/home/alice/.pcmkeys"; rm k; mv real k`)
	if got := content(); got != "cib 3\nalice 1\nbob 1\n0\n" {
		t.Errorf("after a refused commit and abort: %q", got)
	}
}

// TestRunLocal and TestRunSSH: a Run job runs its command once every
// job before it succeeded, after them, and never after one that failed;
// CommitAllThen runs it once every file is committed.
func TestRunLocal(t *testing.T) { testRun(t, localHosts) }

func TestRunSSH(t *testing.T) { testRun(t, sshHosts(t)) }

func testRun(t *testing.T, newHost func(t *testing.T) (distribute.Host, hosttest.Fixture)) {
	h, fx := newHost(t)
	ctx := context.Background()
	_, remote := h.(distribute.Batcher)
	// The command shows what it sees of the file, and leaves a mark.
	run := distribute.Job{Do: distribute.Run, Command: `cat /etc/pacemaker/authkey; touch /root/ran`}
	out := distribute.Apply(ctx, h, []distribute.Job{{File: srv("authkey", "k1"), Do: distribute.Put}, run})
	switch {
	case out[0].Err != nil:
		t.Fatal(out[0].Err)
	case remote && (out[1].Err != nil || out[1].Output != "k1\n"):
		t.Errorf("run after a write: %q, %v", out[1].Output, out[1].Err)
	case !remote && !errors.Is(out[1].Err, distribute.ErrNoExec):
		t.Errorf("run on a host under a root prefix: %q, %v", out[1].Output, out[1].Err)
	}
	fx.Sh(t, `rm -f "$R/root/ran"; ln -s authkey "$R/etc/pacemaker/link"`)
	out = distribute.Apply(ctx, h, []distribute.Job{{File: srv("link", "k2"), Do: distribute.Put}, {File: srv("authkey", "k2"), Do: distribute.Put}, run})
	if !errors.Is(out[0].Err, distribute.ErrUnsafe) || out[1].Err != nil || !errors.Is(out[2].Err, distribute.ErrNotRun) || out[2].Output != "" {
		t.Errorf("run after a refused write: %+v", out)
	}
	if got := fx.Sh(t, `ls -A "$R/root"`); got != "" {
		t.Errorf("the command ran after a refused write: %q", got)
	}

	// After a file in an owner's home that failed (alice's ~/.pcmkeys a
	// link), one that did not, and a file of root's: not run, over SSH
	// (where an owner's run works her files) as one at a time.
	homeFails(t, fx)
	out = distribute.Apply(ctx, h, []distribute.Job{{File: cli("alice", "k", "a1"), Do: distribute.Put}, {File: cli("bob", "k", "b1"), Do: distribute.Put}, {File: srv("authkey", "k2"), Do: distribute.Put}, run})
	if !errors.Is(out[0].Err, distribute.ErrUnsafe) || out[1].Err != nil || out[2].Err != nil || !errors.Is(out[3].Err, distribute.ErrNotRun) || out[3].Output != "" {
		t.Errorf("run after a refused write in a home: %+v", out)
	}
	if got := fx.Sh(t, `ls -A "$R/root"; ls -A "$R/home/alice/elsewhere"; cat "$R/home/bob/.pcmkeys/k"`); got != "b1" {
		t.Errorf("the command ran, or alice's link was followed, after a refused write in her home: %q", got)
	}

	s, err := distribute.StageAll(ctx, h, []distribute.File{srv("authkey", "k3")})
	if err != nil {
		t.Fatal(err)
	}
	n, outs, err := distribute.CommitAllThen(ctx, h, s, run)
	o := outs[0]
	switch {
	case n != 1 || err != nil:
		t.Fatalf("commit: %d, %v", n, err)
	case remote && (o.Err != nil || o.Output != "k3\n"):
		t.Errorf("run after the commit: %q, %v", o.Output, o.Err)
	case !remote && !errors.Is(o.Err, distribute.ErrNoExec):
		t.Errorf("run on a host under a root prefix: %q, %v", o.Output, o.Err)
	}
	fx.Sh(t, `rm -f "$R/root/ran"`)
	s, err = distribute.StageAll(ctx, h, []distribute.File{srv("authkey", "k4")})
	if err != nil {
		t.Fatal(err)
	}
	fx.Sh(t, `cd "$R/etc/pacemaker"; rm authkey; ln -s link authkey`)
	n, outs, err = distribute.CommitAllThen(ctx, h, s, run)
	o = outs[0]
	if n != 0 || !errors.Is(err, distribute.ErrUnsafe) || !errors.Is(o.Err, distribute.ErrNotRun) {
		t.Errorf("commit over a link, then run: %d, %v, %+v", n, err, o)
	}
	distribute.AbortAll(ctx, h, s)
	if got := fx.Sh(t, `ls -A "$R/root"`); got != "" {
		t.Errorf("the command ran after a refused commit: %q", got)
	}
}

// homeFails makes alice's ~/.pcmkeys a link to a directory of hers: a file
// job there fails (ErrUnsafe) in her own run as in root's.
func homeFails(t *testing.T, fx hosttest.Fixture) {
	t.Helper()
	fx.Sh(t, `cd "$R/home/alice"; mkdir -m 700 elsewhere; ln -s elsewhere .pcmkeys; chown -h $ALICE:$ALICE elsewhere .pcmkeys`)
}
