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
// A Run or SetPass there is worked only once every record before it ended
// well, those an owner's run works in her home included: root reads that
// run's answers (relay in batch.sh) as parse reads them here, whatever
// the run exits with.
func (h *SSHHost) ApplyJobs(ctx context.Context, jobs []Job) []Outcome {
	out := make([]Outcome, len(jobs))
	var recs []record
	var at []int     // the job of each record
	refused := false // a job before failed here: a Run or SetPass after it does not run
	for i, j := range jobs {
		if j.chained() && refused {
			out[i].Err = notRun(h.name, j)
			continue
		}
		r, err := h.jobRecord(j)
		if err != nil {
			out[i].Err = err
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
	for k := range recs {
		out[at[k]] = h.outcome(&b, k, jobs[at[k]], serr)
	}
	h.settle(ctx, &b, serr, recs, func(k int) (Job, *Outcome) { return jobs[at[k]], &out[at[k]] })
	return out
}

// outcome reads job j's outcome from record k of b.
func (h *SSHHost) outcome(b *batchOut, k int, j Job, serr error) Outcome {
	var o Outcome
	switch j.Do {
	case Run:
		o.Output, o.Err = b.ran(h, k, j.Command, serr)
		return o
	case SetPass:
		o.Err = b.passwordSet(h, k, j.User, serr)
		return o
	}
	a := b.answers[k]
	o.Swept = a.swept
	o.Wrote, o.Removed = a.did == "written", a.did == "removed"
	o.Err = b.err(h, k, jobOp(j), j.File.Path, serr)
	st, err := b.state(k, j.File.Path)
	o.State = st
	if err != nil && o.Err == nil {
		o.Err = h.fail("inspect", j.File.Path, err)
	}
	return o
}

// settle finishes the file jobs of a batch's records recs (job gives the
// job of record k and its outcome): it removes the temporary files of
// writes the session cut short, and writes a file the script found in
// sync but [Compare] does not.
func (h *SSHHost) settle(ctx context.Context, b *batchOut, serr error, recs []record, job func(k int) (Job, *Outcome)) {
	var cut []int // writes the session cut short: their temporary files may be there
	for k, r := range recs {
		if _, o := job(k); r.temp() && !b.answers[k].ended && mayHaveRun(serr) && !errors.Is(o.Err, ErrNotRun) {
			cut = append(cut, k)
		}
	}
	if len(cut) > 0 {
		var rs []record
		for _, k := range cut {
			rs = append(rs, recs[k])
		}
		for n, err := range h.cleanupBatch(ctx, rs) {
			if _, o := job(cut[n]); err != nil {
				o.Err = errors.Join(o.Err, err)
			}
		}
	}
	for k := range recs {
		if j, o := job(k); o.Err == nil && j.Do == Converge && !o.Wrote {
			// The script found it in sync; Compare decides, and a file it
			// does not find so is written after all.
			if finding, _ := Compare(o.State, j.File); finding != FindingOK {
				o.Err = Write(ctx, h, j.File)
				o.Wrote = o.Err == nil
			}
		}
	}
}

// jobRecord is the script's record for j, or why j is refused before it
// is sent.
func (h *SSHHost) jobRecord(j Job) (record, error) {
	switch j.Do {
	case Run:
		return record{op: "run", path: j.Command}, nil
	case SetPass:
		if err := checkPassword(h.name, j.User, j.Password); err != nil {
			return record{}, err
		}
		if h.root != "" {
			return record{}, fmt.Errorf("host %s: set the password of %s: %w", h.name, j.User, ErrNoExec)
		}
		// The password goes to the batch's stdin, as a file's content.
		return record{op: "setpass", owner: j.User, mode: "600", content: j.Password}, nil
	}
	f := j.File
	op := jobOp(j)
	if j.Sweep {
		op = "sweep"
	}
	if err := checkPath(f.Path); err != nil {
		return record{}, h.fail(op, f.Path, err)
	}
	if err := policies.ValidateUser(f.Owner); err != nil {
		return record{}, h.fail(op, f.Path, err)
	}
	r := record{path: f.Path, owner: f.Owner, mode: "600"}
	switch j.Do {
	case Put, Converge:
		if err := h.checkFile(f); err != nil {
			return record{}, h.fail("write", f.Path, err)
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
	return r, nil
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

// CommitFilesThen implements Batcher: the files committed, then the jobs
// then worked, in one session (a chain: it stops at the first failure).
func (h *SSHHost) CommitFilesThen(ctx context.Context, staged []Staged, then ...Job) (int, []Outcome, error) {
	if out, err := checkThen(h.name, then); err != nil {
		return 0, out, err
	}
	return h.commitFiles(ctx, staged, then)
}

// commitFiles commits staged in one session, then works then, and returns
// how many files were committed, the outcome of each job of then, and the
// commit's failure.
func (h *SSHHost) commitFiles(ctx context.Context, staged []Staged, then []Job) (int, []Outcome, error) {
	var recs []record
	for _, s := range staged {
		ss, ok := s.(*sshStaged)
		if !ok || ss.h != h || ss.done {
			n, err := commitEach(ctx, staged)
			return n, thenEach(ctx, h, then, err != nil), err
		}
		f := ss.f
		owner := f.Owner
		if ss.account != "" {
			owner += ":" + ss.account // not looked up again
		}
		recs = append(recs, record{op: "commit", path: f.Path, owner: owner, group: f.Group, mode: modeArg(f.Mode), sum: f.SHA256(), tmp: ss.tmp})
	}
	files := len(recs)
	// The jobs of then up to one refused here (a SetPass on a host under a
	// root prefix, a file's bad path): that one fails in its turn, as it
	// would one at a time.
	var refused error
	for _, j := range then {
		r, err := h.jobRecord(j)
		if err != nil {
			refused = err
			break
		}
		recs = append(recs, r)
	}
	out := make([]Outcome, len(then))
	if len(recs) == 0 { // then's first job refused, and no file
		for i, j := range then {
			out[i].Err = notRun(h.name, j)
		}
		if len(then) > 0 {
			out[0].Err = refused
		}
		return 0, out, nil
	}
	b, serr := h.batch(ctx, "chain", recs)
	n := files
	var cerr error
	for k, r := range recs[:files] {
		if cerr = b.err(h, k, "commit", r.path, serr); cerr != nil {
			n = k
			break
		}
		staged[k].(*sshStaged).done = true
	}
	// A chain stops at the first record that fails: the jobs after one
	// that said it failed did not run. After one the session cut short
	// (no answer), they may have: their own answers, or the session's
	// failure, say.
	stopped := n < files && b.answers[n].failed()
	sent := len(recs) - files
	for i, j := range then {
		k := files + i
		switch {
		case i >= sent:
			out[i].Err = notRun(h.name, j)
			if !stopped {
				out[i].Err = refused
			}
			stopped = true
			continue
		case stopped && !b.answers[k].seen:
			out[i].Err = notRun(h.name, j)
			continue
		}
		out[i] = h.outcome(&b, k, j, serr)
		stopped = stopped || b.answers[k].failed() || (out[i].Err != nil && b.answers[k].ended)
	}
	h.settle(ctx, &b, serr, recs[files:], func(k int) (Job, *Outcome) { return then[k], &out[k] })
	return n, out, cerr
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
