package rotate

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"
)

// Push converges hosts to the store: every file that is missing or differs
// in content, owner or mode is rewritten; files in sync are left alone.
//
// On a live cluster an authkey with other content than the store's is
// the one exception: writing it would fence the remote nodes at their next
// reconnect (the running daemons keep the key they started with), so it
// is left as it is and the host fails, naming the way that does it
// without fencing (rotate --authkey --restart). Its owner and mode are
// still repaired, and a missing one is written.
func Push(ctx context.Context, e *Env, hosts []string) (*Report, error) {
	return e.run(ctx, workflow{
		action: "push", args: hosts,
		act: func(ctx context.Context, rep *Report) error {
			ds, _, err := e.desired(ctx, deliver.WriteIfDrift, hosts)
			if errors.Is(err, keystore.ErrNotFound) {
				return fmt.Errorf("%w (run pcmkeys init first)", err)
			}
			if err != nil {
				return err
			}
			node, live := "", false
			if holdsAuthkey(ds) {
				node, live = e.liveCluster(ctx)
			}
			if live {
				keepAuthkeys(ds)
			}
			rep.Hosts, err = e.engine().Deliver(ctx, ds)
			if live && failKeptAuthkeys(rep.Hosts, node) {
				rep.Notes = append(rep.Notes, "the authkey on a live cluster differs from the store's and was left as it is: run pcmkeys rotate --authkey --restart to put a key in force without fencing (or stop the cluster, then push)")
				err = deliver.Partial(rep.Hosts)
			}
			return err
		},
	})
}

func holdsAuthkey(ds []deliver.Host) bool {
	for _, d := range ds {
		for _, w := range d.Files {
			if w.Step.Kind == policies.Authkey {
				return true
			}
		}
	}
	return false
}

// keepAuthkeys makes every authkey a file that is written only where none
// is, or where it holds the store's key with another owner or mode.
func keepAuthkeys(ds []deliver.Host) {
	for i := range ds {
		for j := range ds[i].Files {
			if w := &ds[i].Files[j]; w.Step.Kind == policies.Authkey && w.Mode == deliver.WriteIfDrift {
				w.Mode = deliver.KeepExisting
			}
		}
	}
}

// failKeptAuthkeys fails the hosts whose authkey was kept, and says
// whether there was one.
func failKeptAuthkeys(results []HostResult, node string) bool {
	any := false
	for i := range results {
		r := &results[i]
		for j := range r.Files {
			if f := &r.Files[j]; f.Kind == policies.Authkey && f.Action == ActionKept {
				f.Detail = fmt.Sprintf("differs from the store's, and %s answers crm_mon: writing it would fence the remote nodes at their next reconnect", node)
				r.Fail(errors.New("the authkey differs from the store's on a live cluster (left as it is)"))
				any = true
			}
		}
	}
	return any
}
