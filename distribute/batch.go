package distribute

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
)

// Do is what a [Job] does with its file.
type Do int

const (
	// Look inspects the file ([Host.Inspect]).
	Look Do = iota
	// Put writes the file whatever is there ([Write]).
	Put
	// Converge inspects the file and writes it unless [Compare] finds it
	// as wanted (FindingOK).
	Converge
	// RemoveOwn inspects the file and removes it if it exists and is its
	// owner's (File.Owner); a file of anyone else's is left alone.
	RemoveOwn
	// Run runs Job.Command on the host as root, as [Host.Exec] does, once
	// every job before it succeeded (else it fails with [ErrNotRun]); it
	// touches no file.
	Run
	// SetPass sets Job.User's password to Job.Password with the host's
	// chpasswd, as root, as [SetPassword] does (and refuses what it
	// refuses, before anything is sent), once every job before it
	// succeeded (else it fails with [ErrNotRun]); it touches no file.
	SetPass
)

// ErrNotRun is a Run or SetPass job after a job that failed (or, after
// [CommitAllThen]'s files, any job): it did not run.
var ErrNotRun = errors.New("not run: a job before it failed")

// Job is one file's part of a batch (see [Apply]).
type Job struct {
	// File is the file; Look and RemoveOwn use its Path and Owner only.
	File File
	Do   Do
	// Sweep removes the temporary files an interrupted write left beside
	// the target first ([Host.Sweep]).
	Sweep bool
	// Command is a Run job's shell command. It never carries key
	// material.
	Command string
	// User and Password are a SetPass job's account and its new
	// password. The password is key material: it travels as a file's
	// content does (over SSH on the batch's stdin, to chpasswd through a
	// pipe only root's processes read), never in a command line, the
	// environment, a log or an error. The caller owns it (and clears it
	// when done); the copies made to send it are wiped once sent.
	User     string
	Password []byte
}

// chained says whether j runs only if every job before it succeeded.
func (j Job) chained() bool { return j.Do == Run || j.Do == SetPass }

// notRun is why j, after a job that failed, did not run.
func notRun(host string, j Job) error {
	switch j.Do {
	case Run:
		return fmt.Errorf("host %s: %s: %w", host, j.Command, ErrNotRun)
	case SetPass:
		return fmt.Errorf("host %s: set the password of %s: %w", host, escape.String(j.User), ErrNotRun)
	}
	return &PathError{Host: host, Op: jobOp(j), Path: j.File.Path, Err: ErrNotRun}
}

// jobOp names a file job's operation in its errors, as the one-file
// operations do.
func jobOp(j Job) string {
	switch j.Do {
	case Put:
		return "write"
	case RemoveOwn:
		return "remove"
	}
	return "inspect"
}

// Outcome is what became of one [Job].
type Outcome struct {
	// State is what was at the path before anything was written or
	// removed (Look, Converge, RemoveOwn). A transport may leave unhashed
	// (SHA256 empty) a file Converge wrote because its size differs from
	// the content's.
	State FileState
	// Swept counts the temporary files removed beside it.
	Swept int
	// Wrote and Removed say what was done.
	Wrote, Removed bool
	// Output is a Run job's output (stdout and stderr), escaped as
	// [Host.Exec]'s; over SSH in a batch, its lines each end with a
	// newline.
	Output string
	// Err is why the job failed; its other fields hold what was done
	// before.
	Err error
}

// Batcher is a host that works many files in one round trip: every step
// of every file is the same as one at a time through [Host] (the write
// protocol, its checks and refusals), only fewer sessions and processes
// carry them. [SSHHost] is one; [Apply], [StageAll], [CommitAll] and
// [AbortAll] use it where a host offers it.
type Batcher interface {
	// ApplyJobs works jobs in order, each on its own: a failure ends
	// only its job.
	ApplyJobs(ctx context.Context, jobs []Job) []Outcome
	// StageFiles stages files in order until one fails; it returns the
	// staged files, the first len of files, and that failure.
	StageFiles(ctx context.Context, files []File) ([]Staged, error)
	// CommitFiles commits staged files of this host in order until one
	// fails, and returns how many were committed, and that failure.
	CommitFiles(ctx context.Context, staged []Staged) (int, error)
	// AbortFiles removes staged files (see [Staged.Abort]).
	AbortFiles(ctx context.Context, staged []Staged) error
	// CommitFilesThen is CommitFiles, then, if every file was committed,
	// the jobs then in the same round trip, as [CommitAllThen] says.
	CommitFilesThen(ctx context.Context, staged []Staged, then ...Job) (int, []Outcome, error)
}

// Apply works jobs on h, each on its own (a failure ends only its job),
// and returns their outcomes in order: in one round trip if h is a
// [Batcher], else one file at a time.
func Apply(ctx context.Context, h Host, jobs []Job) []Outcome {
	if b, ok := h.(Batcher); ok {
		return b.ApplyJobs(ctx, jobs)
	}
	out := make([]Outcome, len(jobs))
	failed := false
	for i, j := range jobs {
		if j.chained() && failed {
			out[i].Err = notRun(h.Name(), j)
		} else {
			out[i] = applyOne(ctx, h, j)
		}
		failed = failed || out[i].Err != nil
	}
	return out
}

// applyOne is one job through h's own methods: what a Batcher must do
// the same.
func applyOne(ctx context.Context, h Host, j Job) Outcome {
	var o Outcome
	switch j.Do {
	case Run:
		o.Output, o.Err = h.Exec(ctx, j.Command)
		return o
	case SetPass:
		o.Err = SetPassword(ctx, h, j.User, j.Password)
		return o
	}
	f := j.File
	if j.Sweep {
		if o.Swept, o.Err = h.Sweep(ctx, f.Path, f.Owner); o.Err != nil {
			return o
		}
	}
	if j.Do == Put {
		o.Err = Write(ctx, h, f)
		o.Wrote = o.Err == nil
		return o
	}
	if o.State, o.Err = h.Inspect(ctx, f.Path, f.Owner); o.Err != nil {
		return o
	}
	switch j.Do {
	case Converge:
		if finding, _ := Compare(o.State, f); finding != FindingOK {
			o.Err = Write(ctx, h, f)
			o.Wrote = o.Err == nil
		}
	case RemoveOwn:
		if o.State.Exists && o.State.Owner == f.Owner {
			o.Err = h.Remove(ctx, f.Path, f.Owner)
			o.Removed = o.Err == nil
		}
	}
	return o
}

// StageAll stages files on h in order until one fails, and returns the
// staged ones (the caller commits or aborts them) and that failure: in one
// round trip if h is a [Batcher].
func StageAll(ctx context.Context, h Host, files []File) ([]Staged, error) {
	if b, ok := h.(Batcher); ok {
		return b.StageFiles(ctx, files)
	}
	var out []Staged
	for _, f := range files {
		s, err := h.Stage(ctx, f)
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}

// CommitAll commits staged files of h in order until one fails, and
// returns how many were committed and that failure: in one round trip if
// h is a [Batcher].
func CommitAll(ctx context.Context, h Host, staged []Staged) (int, error) {
	if b, ok := h.(Batcher); ok {
		return b.CommitFiles(ctx, staged)
	}
	for i, s := range staged {
		if err := s.Commit(ctx); err != nil {
			return i, err
		}
	}
	return len(staged), nil
}

// CommitAllThen is CommitAll, then, once every file is committed, the
// jobs then in order (a SetPass, a Put of a file, a Run...): in one round
// trip if h is a [Batcher]. It returns an Outcome per job of then. The
// jobs are a chain: each runs only if every file was committed and every
// job before it succeeded; the others fail with [ErrNotRun]. A job
// refused wherever it would run (a SetPass's user or password, see
// [SetPassword]) refuses the whole before anything is sent: nothing is
// committed, and CommitAllThen returns 0 and that refusal.
func CommitAllThen(ctx context.Context, h Host, staged []Staged, then ...Job) (int, []Outcome, error) {
	if b, ok := h.(Batcher); ok {
		return b.CommitFilesThen(ctx, staged, then...)
	}
	if out, err := checkThen(h.Name(), then); err != nil {
		return 0, out, err
	}
	n, err := CommitAll(ctx, h, staged)
	return n, thenEach(ctx, h, then, err != nil), err
}

// checkThen refuses then, before anything is committed, if a job of it
// is refused wherever it runs (a SetPass's user or password): the refused
// job's outcome holds why, the others' ErrNotRun.
func checkThen(host string, then []Job) ([]Outcome, error) {
	for i, j := range then {
		if j.Do != SetPass {
			continue
		}
		if err := checkPassword(host, j.User, j.Password); err != nil {
			out := make([]Outcome, len(then))
			for k, j := range then {
				out[k].Err = notRun(host, j)
			}
			out[i].Err = err
			return out, err
		}
	}
	return nil, nil
}

// thenEach works then through h one job at a time, in order, each only
// if nothing before it failed (failed: a file before them did).
func thenEach(ctx context.Context, h Host, then []Job, failed bool) []Outcome {
	out := make([]Outcome, len(then))
	for i, j := range then {
		if failed {
			out[i].Err = notRun(h.Name(), j)
		} else {
			out[i] = applyOne(ctx, h, j)
		}
		failed = failed || out[i].Err != nil
	}
	return out
}

// AbortAll removes staged files of h (those committed are left alone),
// going on after ctx ends as [Staged.Abort] does: in one round trip if h
// is a [Batcher].
func AbortAll(ctx context.Context, h Host, staged []Staged) error {
	if b, ok := h.(Batcher); ok {
		return b.AbortFiles(ctx, staged)
	}
	var errs []error
	for _, s := range staged {
		errs = append(errs, s.Abort(ctx))
	}
	return errors.Join(errs...)
}
