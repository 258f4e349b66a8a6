package deliver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
)

// Engine works plans on hosts. Its zero value is not usable: Connect is
// required.
type Engine struct {
	// Connect opens a host.
	Connect func(ctx context.Context, h config.Host) (distribute.Host, error)
	// Parallel bounds how many hosts are worked on at once.
	Parallel int
	// DryRun inspects and reports what would be done, changing nothing.
	DryRun bool
	// Progress, if set, is called as each host finishes, one call at a time.
	Progress func(done, total int, r Result)
	Log      *slog.Logger
	// Shown, if set, is the fingerprint a report shows for a key's
	// fingerprint (a dry run's new keys are shown as such).
	Shown func(fingerprint string) string
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return e.Log
}

func (e *Engine) shown(fp string) string {
	if e.Shown == nil {
		return fp
	}
	return e.Shown(fp)
}

// Deliver works every plan's files, hosts in parallel, and returns a
// result per host in order. Hosts that failed are also returned as a
// *PartialError.
func (e *Engine) Deliver(ctx context.Context, hs []Host) ([]Result, error) {
	hs = Merge(hs)
	results := e.Each(ctx, len(hs), func(ctx context.Context, i int) Result { return e.deliverHost(ctx, hs[i]) },
		func(i int) string { return hs[i].Host.Name })
	return results, Partial(results)
}

// Each runs fn for each of n hosts, in parallel, reporting progress. A
// host that never started (the run was cancelled) is failed with the
// context's error; name(i) names it.
func (e *Engine) Each(ctx context.Context, n int, fn func(ctx context.Context, i int) Result, name func(i int) string) []Result {
	results := make([]Result, n)
	var mu sync.Mutex
	done := 0
	errs := distribute.Each(ctx, indexes(n), e.Parallel, func(ctx context.Context, i int) error {
		results[i] = fn(ctx, i)
		mu.Lock()
		done++
		if e.Progress != nil {
			e.Progress(done, n, results[i])
		}
		mu.Unlock()
		return nil
	})
	for i, err := range errs {
		if err != nil {
			results[i] = Result{Host: name(i), Status: StatusFailed, Error: err.Error()}
		}
	}
	return results
}

// Open connects to a plan's host, unless it has a connection; close is a
// no-op for a connection it did not open. A host it cannot open comes
// back as a result that says why. In the later phase of a [Handover] it
// takes the connection kept for the host, if any (close closes it).
func (e *Engine) Open(ctx context.Context, d Host) (conn distribute.Host, close func(), fail *Result) {
	conn, release, fail := e.open(ctx, d)
	if fail != nil {
		return nil, nil, fail
	}
	return conn, func() { release(false) }, nil
}

// open is Open, whose release(ok) closes the connection — or, in the
// first phase of a [Handover], keeps it for the later phase when ok (the
// host's work ended well) and that phase reaches the host.
func (e *Engine) open(ctx context.Context, d Host) (conn distribute.Host, release func(ok bool), fail *Result) {
	if d.Orphan {
		res := &Result{Host: d.Host.Name, Status: StatusNotInConfig,
			Error: "the store's records name this host but the config does not list it: its files were not checked; add it back to the config and run again, or remove them by hand"}
		for _, w := range d.Files {
			step := w.Step
			step.Action = ActionLeftover
			res.Files = append(res.Files, step)
		}
		return nil, nil, res
	}
	if d.Conn != nil {
		return d.Conn, func(bool) {}, nil
	}
	p := phaseOf(ctx)
	if p.h != nil && p.reuse {
		if h := p.h.take(d.Host); h != nil {
			e.log().Debug("connection reused", "host", d.Host.Name)
			return h, func(bool) { h.Close() }, nil
		}
	}
	h, err := e.Connect(ctx, d.Host)
	if err != nil {
		return nil, nil, &Result{Host: d.Host.Name, Status: connectStatus(err), Error: err.Error()}
	}
	return h, func(ok bool) {
		if ok && p.h != nil && !p.reuse && p.h.keep(d.Host, h) {
			return
		}
		h.Close()
	}, nil
}

// connectStatus is the status of a host that failed with err.
func connectStatus(err error) Status {
	switch {
	case errors.Is(err, distribute.ErrTimeout):
		return StatusTimedOut
	case errors.Is(err, distribute.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded):
		return StatusUnreachable
	}
	return StatusFailed
}

// deliverHost works every file of one host, in one round trip where the
// host works batches. A file that fails does not stop the others: each is
// attempted, and each failure is named.
func (e *Engine) deliverHost(ctx context.Context, d Host) (res Result) {
	res = Result{Host: d.Host.Name, Status: StatusOK}
	if e.DryRun {
		res.Status = StatusPlanned
	}
	h, release, fail := e.open(ctx, d)
	if fail != nil {
		return *fail
	}
	defer func() { release(res.OK()) }()
	ws := d.Files
	if d.Password != nil {
		ws = append(slices.Clip(ws), *d.Password)
	}
	steps, errs, ran := e.files(ctx, NewConn(h, d.Homes), ws, d.Then)
	var failed []string
	status := StatusFailed
	for i, w := range ws {
		step, err := steps[i], errs[i]
		if err != nil {
			if errors.Is(err, distribute.ErrTimeout) {
				status = StatusTimedOut
			}
			step.Action, step.Error = ActionFailed, err.Error()
			failed = append(failed, err.Error())
			e.log().Error("delivery failed", "host", d.Host.Name, "path", w.File.Path, "err", err)
		} else {
			e.log().Info("file", "host", d.Host.Name, "path", w.File.Path, "action", step.Action, "fingerprint", step.Fingerprint)
		}
		res.Files = append(res.Files, step)
	}
	if len(failed) > 0 {
		res.Status, res.Error = status, strings.Join(failed, "; ")
		return res
	}
	if d.Then != nil && !e.DryRun {
		if ran == nil {
			o := distribute.Apply(ctx, h, []distribute.Job{d.Then.job()})[0]
			ran = &o
		}
		d.Then.Done(ctx, ran.Output, ran.Err, &res)
	}
	if d.After != nil {
		d.After(ctx, h, &res)
	}
	return res
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
