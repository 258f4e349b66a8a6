package distribute

import (
	"context"
	"errors"
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
)

// Job is one file's part of a batch (see [Apply]).
type Job struct {
	// File is the file; Look and RemoveOwn use its Path and Owner only.
	File File
	Do   Do
	// Sweep removes the temporary files an interrupted write left beside
	// the target first ([Host.Sweep]).
	Sweep bool
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
}

// Apply works jobs on h, each on its own (a failure ends only its job),
// and returns their outcomes in order: in one round trip if h is a
// [Batcher], else one file at a time.
func Apply(ctx context.Context, h Host, jobs []Job) []Outcome {
	if b, ok := h.(Batcher); ok {
		return b.ApplyJobs(ctx, jobs)
	}
	out := make([]Outcome, len(jobs))
	for i, j := range jobs {
		out[i] = applyOne(ctx, h, j)
	}
	return out
}

// applyOne is one job through h's own methods: what a Batcher must do
// the same.
func applyOne(ctx context.Context, h Host, j Job) Outcome {
	var o Outcome
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
