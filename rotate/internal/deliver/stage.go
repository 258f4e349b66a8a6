package deliver

import (
	"context"
	"errors"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/policies"
)

// Staging is every host's files staged beside their targets, each host's
// connection held open for the commit. Commit or Abort closes them (or,
// under [Keep], keeps those of hosts that committed well for a later
// phase).
type Staging struct {
	e     *Engine
	hosts []*staged
}

// staged is one host's staged files.
type staged struct {
	d    Host
	conn *Conn
	// release closes the connection, or keeps it (see [Engine.open]);
	// nil once done, or if none was opened.
	release func(ok bool)
	files   []distribute.Staged
	// res is how staging ended on this host.
	res Result
}

// Stage stages every plan's files, hosts in parallel. The results say
// which hosts failed; their staged files are already removed. Commit or
// Abort the staging afterwards.
func (e *Engine) Stage(ctx context.Context, hs []Host) (*Staging, []Result) {
	hs = Merge(hs)
	s := &Staging{e: e, hosts: make([]*staged, len(hs))}
	for i, d := range hs {
		s.hosts[i] = &staged{d: d}
	}
	results := e.Each(ctx, len(hs), func(ctx context.Context, i int) Result {
		return e.stageHost(ctx, s.hosts[i])
	}, func(i int) string { return hs[i].Host.Name })
	for i := range results {
		s.hosts[i].res = results[i]
	}
	return s, results
}

func (e *Engine) stageHost(ctx context.Context, s *staged) Result {
	res := Result{Host: s.d.Host.Name, Status: StatusOK}
	h, release, fail := e.open(ctx, s.d)
	if fail != nil {
		return *fail
	}
	s.conn, s.release = NewConn(h, s.d.Homes), release
	var files []distribute.File
	var err error
	for _, w := range s.d.Files {
		var f distribute.File
		if f, err = s.conn.Resolve(ctx, w); err != nil {
			break
		}
		files = append(files, f)
	}
	n := len(files) // the steps to report: those staged, and one that failed
	if err == nil {
		// One round trip where the host works batches.
		s.files, err = distribute.StageAll(ctx, h, files)
		n = len(s.files)
	}
	if err != nil {
		n++
	}
	for _, w := range s.d.Files[:n] {
		step := w.Step
		step.Action = ActionStaged
		step.Fingerprint = e.shown(step.Fingerprint)
		res.Files = append(res.Files, step)
	}
	if err != nil {
		res.Status, res.Error = StatusFailed, err.Error()
		e.abortHost(ctx, s, false)
	}
	return res
}

// abortHost removes what was staged on one host (nothing once committed)
// and releases its connection: closes it, or with ok (the host ended
// well) keeps it for a later phase where a [Handover] asks for it.
func (e *Engine) abortHost(ctx context.Context, s *staged, ok bool) {
	if len(s.files) > 0 {
		if err := distribute.AbortAll(ctx, s.conn.Host, s.files); err != nil {
			e.log().Error("abort failed", "host", s.d.Host.Name, "err", err)
		}
	}
	s.files = nil
	if s.release != nil {
		s.release(ok)
		s.release = nil
	}
}

// Abort removes every staged file, hosts in parallel, even after ctx ends.
func (s *Staging) Abort(ctx context.Context) {
	distribute.Each(context.WithoutCancel(ctx), s.hosts, s.e.Parallel, func(ctx context.Context, h *staged) error {
		s.e.abortHost(ctx, h, false)
		return nil
	})
}

// Commit renames every staged file over its target, hosts in parallel,
// runs each host's Then and After, and returns a result per host. A host whose
// staging failed keeps that result: nothing of it is committed. A host the
// run never reached (ctx ended first) is failed with ctx's error, its
// staged files removed and its connection closed, as on every other path.
func (s *Staging) Commit(ctx context.Context) []Result {
	e := s.e
	reached := make([]bool, len(s.hosts))
	results := e.Each(ctx, len(s.hosts), func(ctx context.Context, i int) (res Result) {
		h := s.hosts[i]
		reached[i] = true
		defer func() { e.abortHost(ctx, h, res.OK()) }()
		if !h.res.OK() {
			return h.res
		}
		return e.commitHost(ctx, h)
	}, func(i int) string { return s.hosts[i].d.Host.Name })
	var left []*staged
	for i, h := range s.hosts {
		if !reached[i] {
			left = append(left, h)
		}
	}
	(&Staging{e: e, hosts: left}).Abort(ctx)
	return results
}

// commitHost commits one host's staged files, sets its Password and
// runs its Then and After, in one round trip where the host works
// batches (After aside).
func (e *Engine) commitHost(ctx context.Context, h *staged) Result {
	res := Result{Host: h.d.Host.Name, Status: StatusOK}
	var after []distribute.Job
	pw := h.d.Password
	if pw != nil && !e.DryRun {
		text := pw.Password.PasswordText()
		defer clear(text)
		after = append(after, distribute.Job{Do: distribute.SetPass, User: policies.SharedIdentity, Password: text},
			distribute.Job{File: pw.File, Do: distribute.Put})
	}
	if h.d.Then != nil && !e.DryRun {
		after = append(after, h.d.Then.job())
	}
	var n int
	var err error
	var outs []distribute.Outcome
	if len(after) > 0 {
		n, outs, err = distribute.CommitAllThen(ctx, h.conn.Host, h.files, after...)
	} else {
		n, err = distribute.CommitAll(ctx, h.conn.Host, h.files)
	}
	for j := range h.files[:n] {
		step := h.d.Files[j].Step
		step.Action = ActionCommitted
		step.Fingerprint = e.shown(step.Fingerprint)
		res.Files = append(res.Files, step)
	}
	if err != nil {
		step := h.d.Files[min(n, len(h.d.Files)-1)].Step
		step.Fingerprint = e.shown(step.Fingerprint)
		step.Action, step.Error = ActionFailed, err.Error()
		res.Files = append(res.Files, step)
		res.Status, res.Error = StatusFailed, err.Error()
		return res
	}
	if pw != nil && !e.DryRun {
		step := pw.Step
		step.Fingerprint = e.shown(step.Fingerprint)
		step.Action = ActionWritten
		switch {
		case outs[0].Err != nil:
			err = outs[0].Err
		case outs[1].Err != nil:
			err = unrecorded(outs[1].Err)
		}
		if err != nil {
			step.Action, step.Error = ActionFailed, err.Error()
			res.Status, res.Error = StatusFailed, err.Error()
		}
		res.Files = append(res.Files, step)
		outs = outs[2:]
	}
	if h.d.Then != nil && !e.DryRun {
		ran := outs[0]
		if errors.Is(ran.Err, distribute.ErrNotRun) {
			// The password failed: the files are in place all the same,
			// and Then (closing a cut node's sessions) matters more.
			ran = distribute.Apply(ctx, h.conn.Host, []distribute.Job{h.d.Then.job()})[0]
		}
		h.d.Then.Done(ctx, ran.Output, ran.Err, &res)
	}
	if h.d.After != nil && h.conn != nil {
		h.d.After(ctx, h.conn.Host, &res)
	}
	return res
}
