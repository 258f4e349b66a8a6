package rotate

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/policies"
)

// delivery is the files one host should hold.
type delivery struct {
	host  config.Host
	files []wanted
	// conn is an already open connection to reuse, if any.
	conn distribute.Host
}

// wanted is one file to deliver.
type wanted struct {
	file distribute.File
	step FileStep
	// keepExisting leaves a file that exists with other content alone
	// (init never overwrites what it did not write).
	keepExisting bool
}

// newWanted describes f for the report. fingerprint is that of the one key
// the file holds ("" for none); identities counts a cib-credentials file's
// lines.
func newWanted(f distribute.File, kind policies.FileKind, fingerprint string, identities int, keepExisting bool) wanted {
	return wanted{
		file: f,
		step: FileStep{
			Path: f.Path, Kind: kind, Owner: f.Owner, Group: f.Group,
			Mode: fmt.Sprintf("%04o", uint32(f.Mode.Perm())), Fingerprint: fingerprint, Identities: identities,
		},
		keepExisting: keepExisting,
	}
}

// deliver writes every delivery's files, hosts in parallel, and returns a
// result per host in order. Hosts that failed are also returned as a
// *PartialError.
func (e *Env) deliver(ctx context.Context, ds []delivery) ([]HostResult, error) {
	ds = mergeByHost(ds)
	results := make([]HostResult, len(ds))
	var mu sync.Mutex
	done := 0
	errs := distribute.Each(ctx, indexes(len(ds)), e.Parallel, func(ctx context.Context, i int) error {
		results[i] = e.deliverHost(ctx, ds[i])
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
	var failed []HostResult
	for _, r := range results {
		if r.Status != StatusOK && r.Status != StatusPlanned {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		return results, &PartialError{Failed: failed}
	}
	return results, nil
}

func (e *Env) deliverHost(ctx context.Context, d delivery) HostResult {
	res := HostResult{Host: d.host.Name, Status: StatusOK}
	if e.DryRun {
		res.Status = StatusPlanned
	}
	h := d.conn
	if h == nil {
		var err error
		if h, err = e.connect(ctx, d.host); err != nil {
			res.Status, res.Error = StatusFailed, err.Error()
			if errors.Is(err, distribute.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) {
				res.Status = StatusUnreachable
			}
			return res
		}
		defer h.Close()
	}
	for _, w := range d.files {
		step, err := e.deliverFile(ctx, h, w)
		res.Files = append(res.Files, step)
		if err != nil {
			res.Status, res.Error = StatusFailed, err.Error()
			e.log().Error("delivery failed", "host", d.host.Name, "path", w.file.Path, "err", err)
			return res
		}
		e.log().Info("file", "host", d.host.Name, "path", w.file.Path, "action", step.Action, "fingerprint", step.Fingerprint)
	}
	return res
}

func (e *Env) deliverFile(ctx context.Context, h distribute.Host, w wanted) (FileStep, error) {
	step := w.step
	if w.keepExisting || e.DryRun {
		st, err := h.Inspect(ctx, w.file.Path, w.file.Owner)
		if err != nil {
			return step, err
		}
		switch {
		case st.Exists && st.Regular && st.SHA256 == w.file.SHA256() && st.Mode == w.file.Mode && st.Owner == w.file.Owner && (w.file.Group == "" || st.Group == w.file.Group):
			step.Action = ActionInSync
			return step, nil
		case st.Exists && w.keepExisting:
			step.Action = ActionKept
			return step, nil
		}
	}
	if e.DryRun {
		step.Action = ActionWrite
		return step, nil
	}
	if err := distribute.Write(ctx, h, w.file); err != nil {
		return step, err
	}
	step.Action = ActionWritten
	return step, nil
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
		if !ok {
			at[d.host.Name] = len(out)
			out = append(out, d)
			continue
		}
		out[i].files = append(out[i].files, d.files...)
		if out[i].conn == nil {
			out[i].conn = d.conn
		}
	}
	return out
}
