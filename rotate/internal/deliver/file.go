package deliver

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/policies"
)

// Conn is an open host and the homes of owners looked up on it.
type Conn struct {
	distribute.Host
	homes map[string]string
}

// NewConn wraps an open connection for [Engine.File]; homes are the owners'
// home directories already known there (nil for none).
func NewConn(h distribute.Host, homes map[string]string) *Conn {
	return &Conn{Host: h, homes: homes}
}

// Resolve returns the file w writes: its content rendered from its
// owner's home when it needs one (looked up once per owner).
func (h *Conn) Resolve(ctx context.Context, w Want) (distribute.File, error) {
	f := w.File
	if w.Render == nil {
		return f, nil
	}
	home, ok := h.homes[f.Owner]
	if !ok {
		acct, err := h.LookupUser(ctx, f.Owner)
		if err != nil {
			return f, err
		}
		if h.homes == nil {
			h.homes = map[string]string{}
		}
		home = acct.Home
		h.homes[f.Owner] = home
	}
	content, err := w.Render(home)
	f.Content = content
	return f, err
}

// File brings one file on an open host to what w says, and returns its
// step for the report (with the fingerprint as the report shows it).
func (e *Engine) File(ctx context.Context, h *Conn, w Want) (FileStep, error) {
	steps, errs := e.Files(ctx, h, []Want{w})
	return steps[0], errs[0]
}

// Files brings the files of one open host to what ws say, and returns a
// step and an error per want, in order: a file that fails does not stop
// the others. Where the host works batches (an SSH host) every file is
// judged, written or removed in one round trip, and only what that finds
// to do besides (a password to set, a kept file to write) costs more.
func (e *Engine) Files(ctx context.Context, h *Conn, ws []Want) ([]FileStep, []error) {
	steps, errs, _ := e.files(ctx, h, ws, nil)
	return steps, errs
}

// files is Files, with then run last in the batch where nothing is left
// to write after it (not in a dry run); ran is its outcome if it ran.
func (e *Engine) files(ctx context.Context, h *Conn, ws []Want, then *Then) ([]FileStep, []error, *distribute.Outcome) {
	steps := make([]FileStep, len(ws))
	errs := make([]error, len(ws))
	files := make([]distribute.File, len(ws))
	var jobs []distribute.Job
	var at []int    // the want of each job
	var later []int // wants to write once the batch is judged
	for i, w := range ws {
		steps[i] = w.Step
		if w.Mode == LeaveAlone {
			steps[i].Action, steps[i].Detail = ActionNotTheirs, "not the admin's file"
			continue
		}
		job, direct, err := e.job(ctx, h, w)
		if err != nil {
			errs[i] = err
			continue
		}
		if files[i] = job.File; direct {
			later = append(later, i)
			continue
		}
		jobs = append(jobs, job)
		at = append(at, i)
	}
	var ran *distribute.Outcome
	if then != nil && !e.DryRun && len(later) == 0 && e.final(ws) {
		jobs = append(jobs, then.job())
	}
	outs := distribute.Apply(ctx, h.Host, jobs)
	if len(outs) > len(at) {
		ran = &outs[len(at)]
		outs = outs[:len(at)]
	}
	for k, o := range outs {
		i := at[k]
		steps[i].Swept = o.Swept
		var write bool
		steps[i].Action, steps[i].Detail, write, errs[i] = e.judge(ws[i], jobs[k], o)
		if write {
			later = append(later, i)
		}
	}
	e.writes(ctx, h, ws, files, later, steps, errs)
	for i := range steps {
		steps[i].Fingerprint = e.shown(steps[i].Fingerprint)
	}
	return steps, errs, ran
}

// final says whether the batch of ws writes all there is to write: no
// file waits to be judged first (kept where it differs, a password set
// before its marker).
func (e *Engine) final(ws []Want) bool {
	for _, w := range ws {
		if w.Mode == KeepExisting || w.Password != nil {
			return false
		}
	}
	return true
}

// job is what a batch does for w: a removal, an inspection of what is
// there, or a write (unless a dry run, or the file is written only as
// judged), with a sweep where push converges (that includes what a killed
// run left). direct is a password to set whatever is there: no job.
func (e *Engine) job(ctx context.Context, h *Conn, w Want) (j distribute.Job, direct bool, err error) {
	if w.Mode == Remove {
		do := distribute.RemoveOwn
		if e.DryRun {
			do = distribute.Look
		}
		return distribute.Job{File: distribute.File{Path: w.File.Path, Owner: w.File.Owner}, Do: do}, false, nil
	}
	f, err := h.Resolve(ctx, w)
	if err != nil {
		return j, false, err
	}
	j = distribute.Job{File: f, Do: distribute.Look, Sweep: w.Mode == WriteIfDrift && !e.DryRun}
	switch {
	case e.DryRun || w.Mode == KeepExisting:
	case w.Password != nil:
		// chpasswd comes first: the marker is only inspected here.
		return j, w.Mode == WriteAlways, nil
	case w.Mode == WriteAlways:
		j.Do, j.Sweep = distribute.Put, false
	case w.Mode == WriteIfDrift:
		j.Do = distribute.Converge
	}
	return j, false, nil
}

// judge reads what a batch did with w's job: its action and detail, or
// that the file is still to be written (write), or its error.
func (e *Engine) judge(w Want, j distribute.Job, o distribute.Outcome) (Action, string, bool, error) {
	if w.Mode == Remove {
		return e.judgeRemoval(w, o)
	}
	if o.Err != nil {
		return "", "", false, o.Err
	}
	switch j.Do {
	case distribute.Put:
		return ActionWritten, "", false, nil
	case distribute.Converge:
		if o.Wrote {
			return ActionWritten, "", false, nil
		}
		return ActionInSync, "", false, nil
	}
	finding, _ := distribute.Compare(o.State, j.File)
	switch {
	case finding == distribute.FindingOK && w.Mode != WriteAlways:
		// (a dry run of WriteAlways says what the real run does: write)
		return ActionInSync, "", false, nil
	case w.Mode == KeepExisting && (finding == distribute.FindingContent || finding == distribute.FindingNotRegular):
		return ActionKept, "exists with other content (use import or push)", false, nil
		// The same content with another owner or mode is ours: it is
		// written again with the policy's.
	case e.DryRun:
		return ActionWrite, "", false, nil
	}
	return "", "", true, nil
}

// judgeRemoval reads a removal: a file there that belongs to someone
// else is not the admin's to lose, and is left alone.
func (e *Engine) judgeRemoval(w Want, o distribute.Outcome) (Action, string, bool, error) {
	st := o.State
	switch {
	case errors.Is(o.Err, distribute.ErrUnknownUser):
		return ActionRemoved, "the account is gone, and its home with it", false, nil
	case o.Err != nil:
		return "", "", false, o.Err
	case st.Exists && st.Owner != w.File.Owner:
		return ActionNotTheirs, fmt.Sprintf("owned by %s, not the admin", st.Owner), false, nil
	case e.DryRun:
		return ActionRemove, "", false, nil
	case o.Removed || !st.Exists:
		return ActionRemoved, "", false, nil
	}
	// The owner's by name, yet the host did not remove it: left alone.
	return ActionNotTheirs, fmt.Sprintf("owned by uid %d, not the admin's", st.UID), false, nil
}

// writes writes the wants at idx that the batch judged to need it: the
// files in one more batch, passwords one by one (chpasswd, then the
// marker).
func (e *Engine) writes(ctx context.Context, h *Conn, ws []Want, files []distribute.File, idx []int, steps []FileStep, errs []error) {
	var jobs []distribute.Job
	var at []int
	for _, i := range idx {
		if ws[i].Password != nil {
			if errs[i] = setPassword(ctx, h.Host, ws[i]); errs[i] == nil {
				steps[i].Action = ActionWritten
			}
			continue
		}
		jobs = append(jobs, distribute.Job{File: files[i], Do: distribute.Put})
		at = append(at, i)
	}
	for k, o := range distribute.Apply(ctx, h.Host, jobs) {
		if errs[at[k]] = o.Err; o.Err == nil {
			steps[at[k]].Action = ActionWritten
		}
	}
}

// setPassword sets the password with chpasswd, then records it in the
// marker (w.File), which decided whether it was needed.
func setPassword(ctx context.Context, h distribute.Host, w Want) error {
	text := w.Password.PasswordText()
	defer clear(text)
	if err := distribute.SetPassword(ctx, h, policies.SharedIdentity, text); err != nil {
		return err
	}
	if err := distribute.Write(ctx, h, w.File); err != nil {
		return unrecorded(err)
	}
	return nil
}

// unrecorded is why a password that was set has no marker: err, the
// marker's write.
func unrecorded(err error) error {
	return fmt.Errorf("%s's password is set, but recording it failed: %w", policies.SharedIdentity, err)
}
