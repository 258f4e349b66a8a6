package rotate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/policies"
)

// delivery is the files one host should hold.
type delivery struct {
	host  config.Host
	files []wanted
	// conn is an already open connection to reuse, if any.
	conn distribute.Host
	// after, if set, runs on the host's connection once every file is in
	// place (closing live sessions on a node that was cut).
	after func(ctx context.Context, h distribute.Host, res *HostResult)
	// orphan marks a host that the store's records name and the config
	// does not list: it cannot be reached, and its files are leftovers.
	orphan bool
}

// How a wanted file is delivered.
type deliveryMode int

const (
	writeAlways  deliveryMode = iota // write it
	writeIfDrift                     // write it unless the host already holds it
	keepExisting                     // write it only where nothing is (init)
	removeFile                       // remove it if it is its owner's (revocation)
	leaveAlone                       // never touch it (a record naming a server file)
)

// wanted is one file to deliver.
type wanted struct {
	file distribute.File
	step FileStep
	mode deliveryMode
	// render, if set, makes the file on the host's connection (an env file
	// needs the admin's home there).
	render func(ctx context.Context, h distribute.Host) (distribute.File, error)
	// password, if set, is hacluster's password to set on a node; file is
	// then the marker that records it.
	password keys.Secret
}

// newWanted describes f for the report. fingerprint is that of the one key
// the file holds ("" for none); identities counts a cib-credentials file's
// lines.
func newWanted(f distribute.File, kind policies.FileKind, fingerprint string, identities int, mode deliveryMode) wanted {
	return wanted{
		file: f,
		step: FileStep{
			Path: f.Path, Kind: kind, Owner: f.Owner, Group: f.Group,
			Mode: fmt.Sprintf("%04o", uint32(f.Mode.Perm())), Fingerprint: fingerprint, Identities: identities,
		},
		mode: mode,
	}
}

// deliver works every delivery's files, hosts in parallel, and returns a
// result per host in order. Hosts that failed are also returned as a
// *PartialError.
func (e *Env) deliver(ctx context.Context, ds []delivery) ([]HostResult, error) {
	ds = mergeByHost(ds)
	results := e.eachHost(ctx, ds, e.deliverHost)
	return results, partial(results)
}

// eachHost runs fn for every delivery, in parallel, reporting progress.
func (e *Env) eachHost(ctx context.Context, ds []delivery, fn func(context.Context, delivery) HostResult) []HostResult {
	results := make([]HostResult, len(ds))
	var mu sync.Mutex
	done := 0
	errs := distribute.Each(ctx, indexes(len(ds)), e.Parallel, func(ctx context.Context, i int) error {
		results[i] = fn(ctx, ds[i])
		mu.Lock()
		done++
		if e.Progress != nil {
			e.Progress(done, len(ds), results[i])
		}
		mu.Unlock()
		return nil
	})
	for i, err := range errs {
		if err != nil { // never started: the run was cancelled
			results[i] = HostResult{Host: ds[i].host.Name, Status: StatusFailed, Error: err.Error()}
		}
	}
	return results
}

// partial returns a *PartialError naming the hosts that did not end ok.
func partial(results []HostResult) error {
	var failed []HostResult
	for _, r := range results {
		if r.Status != StatusOK && r.Status != StatusPlanned {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		return &PartialError{Failed: failed}
	}
	return nil
}

// open connects to a delivery's host, unless it has a connection; close
// is a no-op for a connection it did not open.
func (e *Env) open(ctx context.Context, d delivery) (distribute.Host, func(), *HostResult) {
	if d.orphan {
		res := &HostResult{Host: d.host.Name, Status: StatusNotInConfig,
			Error: "the store's records name this host but the config does not list it: its files were not checked; add it back to the config and run again, or remove them by hand"}
		for _, w := range d.files {
			step := w.step
			step.Action = ActionLeftover
			res.Files = append(res.Files, step)
		}
		return nil, nil, res
	}
	if d.conn != nil {
		return d.conn, func() {}, nil
	}
	h, err := e.connect(ctx, d.host)
	if err != nil {
		res := &HostResult{Host: d.host.Name, Status: StatusFailed, Error: err.Error()}
		switch {
		case errors.Is(err, distribute.ErrTimeout):
			res.Status = StatusTimedOut
		case errors.Is(err, distribute.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded):
			res.Status = StatusUnreachable
		}
		return nil, nil, res
	}
	return h, func() { h.Close() }, nil
}

// deliverHost works every file of one host. A file that fails does not
// stop the others: each is attempted, and each failure is named.
func (e *Env) deliverHost(ctx context.Context, d delivery) HostResult {
	res := HostResult{Host: d.host.Name, Status: StatusOK}
	if e.DryRun {
		res.Status = StatusPlanned
	}
	h, done, fail := e.open(ctx, d)
	if fail != nil {
		return *fail
	}
	defer done()
	var failed []string
	status := StatusFailed
	for _, w := range d.files {
		step, err := e.deliverFile(ctx, h, w)
		if err != nil {
			if errors.Is(err, distribute.ErrTimeout) {
				status = StatusTimedOut
			}
			step.Action, step.Error = ActionFailed, err.Error()
			failed = append(failed, err.Error())
			e.log().Error("delivery failed", "host", d.host.Name, "path", w.file.Path, "err", err)
		} else {
			e.log().Info("file", "host", d.host.Name, "path", w.file.Path, "action", step.Action, "fingerprint", step.Fingerprint)
		}
		step.Fingerprint = e.shown(step.Fingerprint)
		res.Files = append(res.Files, step)
	}
	if len(failed) > 0 {
		res.Status, res.Error = status, strings.Join(failed, "; ")
		return res
	}
	if d.after != nil {
		d.after(ctx, h, &res)
	}
	return res
}

// resolve renders a lazily made file on its host.
func (w wanted) resolve(ctx context.Context, h distribute.Host) (distribute.File, error) {
	if w.render == nil {
		return w.file, nil
	}
	return w.render(ctx, h)
}

// inSync reports whether st is exactly f, with its owner and mode.
func inSync(st distribute.FileState, f distribute.File) bool {
	return st.Exists && st.Regular && st.SHA256 == f.SHA256() && st.Mode == f.Mode &&
		st.Owner == f.Owner && (f.Group == "" || st.Group == f.Group)
}

func (e *Env) deliverFile(ctx context.Context, h distribute.Host, w wanted) (FileStep, error) {
	step := w.step
	switch w.mode {
	case leaveAlone:
		step.Action = ActionNotTheirs
		return step, nil
	case removeFile:
		return e.removeOwn(ctx, h, w)
	}
	f, err := w.resolve(ctx, h)
	if err != nil {
		return step, err
	}
	if w.mode == writeIfDrift && !e.DryRun {
		// Push converges: that includes what a killed run left behind.
		if step.Swept, err = h.Sweep(ctx, f.Path, f.Owner); err != nil {
			return step, err
		}
	}
	if w.mode != writeAlways || e.DryRun {
		st, err := h.Inspect(ctx, f.Path, f.Owner)
		if err != nil {
			return step, err
		}
		switch {
		case inSync(st, f) && w.mode != writeAlways:
			// (a dry run of writeAlways says what the real run does: write)
			step.Action = ActionInSync
			return step, nil
		case st.Exists && w.mode == keepExisting && st.SHA256 != f.SHA256():
			step.Action = ActionKept
			return step, nil
			// The same content with another owner or mode is ours: it is
			// written again with the policy's.
		}
	}
	if e.DryRun {
		step.Action = ActionWrite
		return step, nil
	}
	if w.password != nil {
		err = e.setNodePassword(ctx, h, w)
	} else {
		err = distribute.Write(ctx, h, f)
	}
	if err != nil {
		return step, err
	}
	step.Action = ActionWritten
	return step, nil
}

// removeOwn removes a file of its owner's: a file there that belongs to
// someone else is not theirs to lose, and is left alone.
func (e *Env) removeOwn(ctx context.Context, h distribute.Host, w wanted) (FileStep, error) {
	step := w.step
	st, err := h.Inspect(ctx, w.file.Path, w.file.Owner)
	switch {
	case errors.Is(err, distribute.ErrUnknownUser):
		step.Action = ActionRemoved // the account is gone, and its home with it
		return step, nil
	case err != nil:
		return step, err
	case st.Exists && st.Owner != w.file.Owner:
		step.Action = ActionNotTheirs
		return step, nil
	case e.DryRun:
		step.Action = ActionRemove
		return step, nil
	case !st.Exists:
		step.Action = ActionRemoved
		return step, nil
	}
	if err := h.Remove(ctx, w.file.Path, w.file.Owner); err != nil {
		return step, err
	}
	step.Action = ActionRemoved
	return step, nil
}

// staging is one host's files staged for a commit everywhere at once.
type staging struct {
	d      delivery
	conn   distribute.Host
	close  func()
	staged []distribute.Staged
	res    HostResult
}

// stageAll stages every delivery's files, hosts in parallel, keeping each
// host's connection open for the commit. The results say which hosts
// failed; their staged files are already removed.
func (e *Env) stageAll(ctx context.Context, ds []delivery) ([]*staging, []HostResult) {
	ds = mergeByHost(ds)
	out := make([]*staging, len(ds))
	results := e.eachHost(ctx, ds, func(ctx context.Context, d delivery) HostResult {
		i := indexOfDelivery(ds, d.host.Name)
		s := &staging{d: d, res: HostResult{Host: d.host.Name, Status: StatusOK}}
		out[i] = s
		h, done, fail := e.open(ctx, d)
		if fail != nil {
			s.res = *fail
			return s.res
		}
		s.conn, s.close = h, done
		for _, w := range d.files {
			f, err := w.resolve(ctx, h)
			var st distribute.Staged
			if err == nil {
				st, err = h.Stage(ctx, f)
			}
			step := w.step
			step.Action = ActionStaged
			s.res.Files = append(s.res.Files, step)
			if err != nil {
				s.res.Status, s.res.Error = StatusFailed, err.Error()
				e.abortHost(ctx, s)
				return s.res
			}
			s.staged = append(s.staged, st)
		}
		return s.res
	})
	for i := range out {
		if out[i] == nil { // never started
			out[i] = &staging{d: ds[i], res: results[i]}
		}
	}
	return out, results
}

func indexOfDelivery(ds []delivery, host string) int {
	for i, d := range ds {
		if d.host.Name == host {
			return i
		}
	}
	return -1
}

// abortHost removes what was staged on one host and closes it.
func (e *Env) abortHost(ctx context.Context, s *staging) {
	for _, st := range s.staged {
		if err := st.Abort(ctx); err != nil {
			e.log().Error("abort failed", "host", s.d.host.Name, "err", err)
		}
	}
	s.staged = nil
	if s.close != nil {
		s.close()
		s.close = nil
	}
}

// abortAll removes every staged file, hosts in parallel.
func (e *Env) abortAll(ctx context.Context, ss []*staging) {
	distribute.Each(context.WithoutCancel(ctx), ss, e.Parallel, func(ctx context.Context, s *staging) error {
		e.abortHost(ctx, s)
		return nil
	})
}

// commitAll renames every staged file over its target, hosts in parallel,
// and returns a result per host.
func (e *Env) commitAll(ctx context.Context, ss []*staging) []HostResult {
	ds := make([]delivery, len(ss))
	for i, s := range ss {
		ds[i] = s.d
	}
	return e.eachHost(ctx, ds, func(ctx context.Context, d delivery) HostResult {
		s := ss[indexOfDelivery(ds, d.host.Name)]
		defer e.abortHost(ctx, s) // closes; a no-op for committed files
		res := HostResult{Host: d.host.Name, Status: StatusOK}
		for i, st := range s.staged {
			step := s.d.files[i].step
			step.Action = ActionCommitted
			if err := st.Commit(ctx); err != nil {
				step.Action, step.Error = ActionFailed, err.Error()
				res.Files = append(res.Files, step)
				res.Status, res.Error = StatusFailed, err.Error()
				return res
			}
			res.Files = append(res.Files, step)
		}
		if s.d.after != nil && s.conn != nil {
			s.d.after(ctx, s.conn, &res)
		}
		return res
	})
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// mergeByHost joins deliveries to the same host, so each host is reached
// once, with its files in the order given.
func mergeByHost(ds []delivery) []delivery {
	var out []delivery
	at := map[string]int{}
	for _, d := range ds {
		i, ok := at[d.host.Name]
		if ok && out[i].orphan != d.orphan {
			ok = false // never merge a reachable host with a stale name
		}
		if !ok {
			at[d.host.Name] = len(out)
			out = append(out, d)
			continue
		}
		out[i].files = append(out[i].files, d.files...)
		if out[i].conn == nil {
			out[i].conn = d.conn
		}
		if out[i].after == nil {
			out[i].after = d.after
		}
	}
	return out
}
