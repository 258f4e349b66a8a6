package rotate

import (
	"context"
	"fmt"
	"slices"

	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"
)

// RemoveClient takes client hosts away from an admin who stays an admin:
// their files there (key, password and env file, only files that are
// theirs) are removed, and each host whose files are gone leaves their
// record. Their key is not rotated: they still hold it on their other
// hosts. To take access away, revoke them.
//
// A host the config no longer lists cannot be reached: it leaves the
// record, and its files are reported as left behind.
func RemoveClient(ctx context.Context, e *Env, user string, hosts []string) (*Report, error) {
	return e.run(ctx, workflow{
		action: "remove-client", args: append([]string{user}, hosts...),
		validate: func() error {
			if len(hosts) == 0 {
				return badInput("name the client hosts to remove from %s", user)
			}
			return validUsers([]string{user})
		},
		act: func(ctx context.Context, rep *Report) error { return e.removeClient(ctx, user, hosts, rep) },
	})
}

func (e *Env) removeClient(ctx context.Context, user string, hosts []string, rep *Report) error {
	admin, err := e.Store.GetAdmin(ctx, user)
	if err != nil {
		return fmt.Errorf("admin %s: %w", user, err)
	}
	if !admin.Active() {
		return badInput("%s is being revoked or was revoked: run pcmkeys revoke %s to finish it", user, user)
	}
	var ds []deliver.Host
	var gone []string // hosts the config no longer lists
	for _, name := range hosts {
		c, ok := recordedClient(admin, name)
		if !ok {
			return badInput("%s has no files recorded on %s (pcmkeys admins lists where they do)", user, name)
		}
		h, ok := e.Config.Host(name)
		if !ok {
			gone = append(gone, name)
			res := HostResult{Host: name, Status: StatusNotInConfig,
				Error: fmt.Sprintf("the config no longer lists %s: %s's files there were not removed; remove them by hand", name, user)}
			for _, w := range e.removalWanted(admin, c) {
				step := w.Step
				step.Action = ActionLeftover
				res.Files = append(res.Files, step)
			}
			rep.Hosts = append(rep.Hosts, res)
			continue
		}
		ds = append(ds, deliver.Host{Host: h, Files: e.removalWanted(admin, c)})
	}
	results, derr := e.engine().Deliver(ctx, ds)
	rep.Hosts = append(results, rep.Hosts...)
	if e.DryRun {
		return derr
	}
	before := len(admin.Clients)
	admin.Clients = slices.DeleteFunc(admin.Clients, func(c keystore.Client) bool {
		return slices.Contains(gone, c.Host) ||
			(slices.Contains(hosts, c.Host) && clientFilesGone(results, user, e.recordedPaths(c), c.Host))
	})
	if len(admin.Clients) != before {
		if _, err := e.Store.PutAdmin(ctx, admin); err != nil {
			return fmt.Errorf("record admin %s: %w", user, err)
		}
	}
	return derr
}
