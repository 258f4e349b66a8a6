package distribute

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/policies"
	"golang.org/x/crypto/ssh"
)

var _ Batcher = (*SSHHost)(nil)

// ApplyJobs implements Batcher: every job in one session of the script.
func (h *SSHHost) ApplyJobs(ctx context.Context, jobs []Job) []Outcome {
	out := make([]Outcome, len(jobs))
	var recs []record
	var at []int     // the job of each record
	refused := false // a job before failed here: a Run after it does not run
	for i, j := range jobs {
		if j.Do == Run && refused {
			out[i].Err = fmt.Errorf("host %s: %s: %w", h.name, j.Command, ErrNotRun)
			continue
		}
		r, op, err := h.jobRecord(j)
		if err != nil {
			out[i].Err = h.fail(op, j.File.Path, err)
			refused = true
			continue
		}
		recs = append(recs, r)
		at = append(at, i)
	}
	if len(recs) == 0 {
		return out
	}
	b, serr := h.batch(ctx, "batch", recs)
	var cut []int // writes the session cut short: their temporary files may be there
	for k, r := range recs {
		j, o := jobs[at[k]], &out[at[k]]
		a := b.answers[k]
		if j.Do == Run {
			o.Output, o.Err = b.ran(h, k, j.Command, serr)
			continue
		}
		o.Swept = a.swept
		o.Wrote, o.Removed = a.did == "written", a.did == "removed"
		o.Err = b.err(h, k, jobOp(j), j.File.Path, serr)
		if r.reads() && !a.ended && mayHaveRun(serr) {
			cut = append(cut, k)
		}
		st, err := b.state(k, j.File.Path)
		o.State = st
		if err != nil && o.Err == nil {
			o.Err = h.fail("inspect", j.File.Path, err)
		}
	}
	if len(cut) > 0 {
		var rs []record
		for _, k := range cut {
			rs = append(rs, recs[k])
		}
		for n, err := range h.cleanupBatch(ctx, rs) {
			if o := &out[at[cut[n]]]; err != nil {
				o.Err = errors.Join(o.Err, err)
			}
		}
	}
	for i, j := range jobs {
		if o := &out[i]; o.Err == nil && j.Do == Converge && !o.Wrote {
			// The script found it in sync; Compare decides, and a file it
			// does not find so is written after all.
			if finding, _ := Compare(o.State, j.File); finding != FindingOK {
				o.Err = Write(ctx, h, j.File)
				o.Wrote = o.Err == nil
			}
		}
	}
	return out
}

// jobRecord is the script's record for j, or why j is refused before it
// is sent (with the operation to name).
func (h *SSHHost) jobRecord(j Job) (record, string, error) {
	if j.Do == Run {
		return record{op: "run", path: j.Command}, "run", nil
	}
	f := j.File
	op := jobOp(j)
	if j.Sweep {
		op = "sweep"
	}
	if err := checkPath(f.Path); err != nil {
		return record{}, op, err
	}
	if err := policies.ValidateUser(f.Owner); err != nil {
		return record{}, op, err
	}
	r := record{path: f.Path, owner: f.Owner, mode: "600"}
	switch j.Do {
	case Put, Converge:
		if err := h.checkFile(f); err != nil {
			return record{}, "write", err
		}
		r.group, r.mode, r.sum, r.tmp, r.content = f.Group, modeArg(f.Mode), f.SHA256(), tempSuffix(), f.Content
		r.op = "write"
		if j.Do == Converge {
			r.op = "converge"
		}
	case RemoveOwn:
		r.op = "removeown"
	default:
		r.op = "inspect"
	}
	if j.Sweep {
		r.op = "sweep+" + r.op
	}
	return r, op, nil
}

// jobOp names a job's operation in its errors, as the one-file
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

// StageFiles implements Batcher: the files staged in one session.
func (h *SSHHost) StageFiles(ctx context.Context, files []File) ([]Staged, error) {
	var recs []record
	var bad error
	for _, f := range files {
		if err := h.checkFile(f); err != nil {
			bad = h.fail("stage", f.Path, err)
			break
		}
		recs = append(recs, record{op: "stage", path: f.Path, owner: f.Owner, group: f.Group, mode: modeArg(f.Mode), sum: f.SHA256(), tmp: tempSuffix(), content: f.Content})
	}
	var out []Staged
	if len(recs) == 0 {
		return out, bad
	}
	b, serr := h.batch(ctx, "chain", recs)
	for k, r := range recs {
		a := b.answers[k]
		if err := b.err(h, k, "stage", r.path, serr); err != nil {
			var re *remoteError
			if !errors.As(err, &re) && mayHaveRun(serr) {
				// Interrupted or timed out: this file's (and no later
				// one's: a chain stops) temporary file may be there.
				if aerr := h.cleanupBatch(ctx, []record{r})[0]; aerr != nil {
					err = errors.Join(err, aerr)
				}
			}
			return out, err
		}
		if a.tmp == "" || strings.ContainsAny(a.tmp, "\n\x00") {
			return out, h.fail("stage", r.path, errors.New("the remote side did not name its temporary file"))
		}
		out = append(out, &sshStaged{h: h, f: files[k], tmp: a.tmp, account: account(a.account)})
	}
	return out, bad
}

// CommitFiles implements Batcher: the files committed in one session.
// Staged files of another host, or done already, are committed one by
// one.
func (h *SSHHost) CommitFiles(ctx context.Context, staged []Staged) (int, error) {
	n, _, err := h.commitFiles(ctx, staged, nil)
	return n, err
}

// CommitFilesThen implements Batcher: the files committed, then the
// command run, in one session.
func (h *SSHHost) CommitFilesThen(ctx context.Context, staged []Staged, then Job) (int, Outcome, error) {
	o := Outcome{Err: fmt.Errorf("host %s: %s: %w", h.name, then.Command, ErrNotRun)}
	n, ran, err := h.commitFiles(ctx, staged, &then)
	if ran != nil {
		o = *ran
	}
	return n, o, err
}

// commitFiles commits staged in one session, then runs then (if any) and
// returns its outcome (nil if it did not run).
func (h *SSHHost) commitFiles(ctx context.Context, staged []Staged, then *Job) (int, *Outcome, error) {
	var recs []record
	for _, s := range staged {
		ss, ok := s.(*sshStaged)
		if !ok || ss.h != h || ss.done {
			n, err := commitEach(ctx, staged)
			if err != nil || then == nil {
				return n, nil, err
			}
			o := applyOne(ctx, h, *then)
			return n, &o, nil
		}
		f := ss.f
		owner := f.Owner
		if ss.account != "" {
			owner += ":" + ss.account // not looked up again
		}
		recs = append(recs, record{op: "commit", path: f.Path, owner: owner, group: f.Group, mode: modeArg(f.Mode), sum: f.SHA256(), tmp: ss.tmp})
	}
	files := len(recs)
	if then != nil {
		recs = append(recs, record{op: "run", path: then.Command})
	}
	if len(recs) == 0 {
		return 0, nil, nil
	}
	b, serr := h.batch(ctx, "chain", recs)
	for k, r := range recs[:files] {
		if err := b.err(h, k, "commit", r.path, serr); err != nil {
			return k, nil, err
		}
		staged[k].(*sshStaged).done = true
	}
	if then == nil {
		return files, nil, nil
	}
	var o Outcome
	o.Output, o.Err = b.ran(h, files, then.Command, serr)
	return files, &o, nil
}

// account returns a stage's answer UID:GID:HOME if it is one, else "".
func account(s string) string {
	uid, rest, ok1 := strings.Cut(s, ":")
	gid, home, ok2 := strings.Cut(rest, ":")
	_, ok3 := atoi(uid)
	_, ok4 := atoi(gid)
	if !ok1 || !ok2 || !ok3 || !ok4 || strings.ContainsAny(home, ":\n\x00") {
		return ""
	}
	return s
}

func commitEach(ctx context.Context, staged []Staged) (int, error) {
	for i, s := range staged {
		if err := s.Commit(ctx); err != nil {
			return i, err
		}
	}
	return len(staged), nil
}

// AbortFiles implements Batcher: this host's staged files removed in one
// session (see [SSHHost.cleanupBatch]), others one by one.
func (h *SSHHost) AbortFiles(ctx context.Context, staged []Staged) error {
	var recs []record
	var errs []error
	for _, s := range staged {
		ss, ok := s.(*sshStaged)
		if !ok || ss.h != h {
			errs = append(errs, s.Abort(ctx))
			continue
		}
		if ss.done {
			continue
		}
		ss.done = true
		f := ss.f
		recs = append(recs, record{op: "abort", path: f.Path, owner: f.Owner, group: f.Group, mode: modeArg(f.Mode), tmp: ss.tmp})
	}
	if len(recs) > 0 {
		for k, err := range h.cleanupBatch(ctx, recs) {
			if err != nil {
				errs = append(errs, fmt.Errorf("abort %s: %w", recs[k].path, err))
			}
		}
	}
	return errors.Join(errs...)
}

// cleanupBatch removes the temporary files of recs (their tmp: a path or
// a suffix) as [SSHHost.cleanup] removes one: even after ctx has ended,
// within a bound, over a fresh connection (killing what is left of the
// commands that made them first) when the host's own fails. It returns an
// error per record.
func (h *SSHHost) cleanupBatch(ctx context.Context, recs []record) []error {
	with := func(op string) []record {
		out := make([]record, len(recs))
		for k, r := range recs {
			out[k] = record{op: op, path: r.path, owner: r.owner, group: r.group, mode: r.mode, tmp: r.tmp}
		}
		return out
	}
	errs := make([]error, len(recs))
	dialErr := h.cleanupOver(ctx, func(base context.Context, c *ssh.Client, bound time.Duration) bool {
		b, serr := h.batchOn(base, c, bound, "batch", with("abort"))
		settled := true
		for k, r := range recs {
			errs[k] = b.err(h, k, "abort", r.path, serr)
			settled = settled && (errs[k] == nil || !errors.Is(errs[k], ErrUnreachable))
		}
		return settled
	}, func(base context.Context, c *ssh.Client, bound time.Duration) {
		b, serr := h.batchOn(base, c, bound, "batch", with("reap"))
		for k, r := range recs {
			errs[k] = nil
			if err := b.err(h, k, "abort", r.path, serr); err != nil {
				errs[k] = fmt.Errorf("cleanup over a new connection: %w", err)
			}
		}
	})
	if dialErr != nil {
		for k := range errs {
			errs[k] = fmt.Errorf("cleanup over a new connection: %w", dialErr)
		}
	}
	return errs
}
