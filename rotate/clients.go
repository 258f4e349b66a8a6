package rotate

import (
	"fmt"
	"slices"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// clientDeliveries returns the client files that hold keys (the key and
// the password) of every active admin whose identity has a key in fresh.
// The env file names paths, not keys: a new key leaves it as it is (push
// repairs it). An admin's client on a host the config no longer lists gets
// a note, not a delivery.
func (e *Env) clientDeliveries(admins []keystore.Admin, fresh map[keystore.ID]keys.Secret, pw keys.Secret, mode deliver.Mode) ([]deliver.Host, error) {
	var ds []deliver.Host
	for _, a := range admins {
		k, ok := fresh[keystore.CIB(a.Identity)]
		if !ok || !a.Active() {
			continue
		}
		for _, c := range a.Clients {
			h, ok := e.Config.Host(c.Host)
			if !ok {
				e.log().Warn("client host not in the config", "admin", a.User, "host", c.Host)
				continue
			}
			ws, err := e.clientWanted(a, c, k, pw, mode)
			if err != nil {
				return nil, err
			}
			ws = slices.DeleteFunc(ws, func(w deliver.Want) bool { return w.Step.Kind == policies.ClientEnv })
			ds = append(ds, deliver.Host{Host: h, Files: ws})
		}
	}
	return ds, nil
}

// removalDeliveries returns the removal of the client files of admins
// being revoked, and, as leftovers, those on hosts the config no longer
// lists. A recorded path that is a server file's is never removed.
func (e *Env) removalDeliveries(admins []keystore.Admin) ([]deliver.Host, []HostResult) {
	var ds []deliver.Host
	var leftovers []HostResult
	for _, a := range admins {
		for _, c := range a.Clients {
			ws := e.removalWanted(a, c)
			h, ok := e.Config.Host(c.Host)
			if !ok {
				res := HostResult{Host: c.Host, Status: StatusNotInConfig,
					Error: fmt.Sprintf("the config no longer lists %s: %s's files there were not removed; add the host back to the config and run again, or remove them by hand", c.Host, a.User)}
				for _, w := range ws {
					step := w.Step
					step.Action = ActionLeftover
					res.Files = append(res.Files, step)
				}
				leftovers = append(leftovers, res)
				continue
			}
			ds = append(ds, deliver.Host{Host: h, Files: ws})
		}
	}
	return ds, leftovers
}

// removalWanted removes admin a's files on one client: only files that
// are a's own (see deliverFile), and never the path of a server file.
func (e *Env) removalWanted(a keystore.Admin, c keystore.Client) []deliver.Want {
	var out []deliver.Want
	for _, f := range []struct {
		path string
		kind policies.FileKind
	}{{c.KeyFile, policies.ClientKey}, {c.EnvFile, policies.ClientEnv}, {e.passwordPath(c), policies.ClientPassword}} {
		w := deliver.Want{File: distribute.File{Path: f.path, Owner: a.User}, Step: FileStep{Path: f.path, Kind: f.kind, Owner: a.User}, Mode: deliver.Remove}
		if e.isServerPath(f.path) {
			w.Mode = deliver.LeaveAlone
		}
		out = append(out, w)
	}
	return out
}

// isServerPath reports whether p is the path of a server file.
func (e *Env) isServerPath(p string) bool {
	files := e.Config.Policy.Files
	return p == files[policies.CIBCredentials].Path || p == files[policies.Authkey].Path
}

// recordedPaths are the files of a client entry that removal takes away
// (see removalWanted).
func (e *Env) recordedPaths(c keystore.Client) []string {
	return []string{c.KeyFile, c.EnvFile, e.passwordPath(c)}
}
