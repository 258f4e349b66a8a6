package rotate

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// desired returns what every host should hold according to the store:
// server files on nodes and remote nodes, each active admin's client files,
// and the removal of the client files of admins whose revocation has not
// finished. With hosts given, only those hosts. It also returns every
// credential it read, so that status need not read them again: one read
// per admin record and one per key in all.
func (e *Env) desired(ctx context.Context, mode deliveryMode, hosts []string) ([]delivery, map[keystore.ID]keystore.Credential, error) {
	only := map[string]bool{}
	for _, h := range hosts {
		if _, ok := e.Config.Host(h); !ok {
			return nil, nil, badInput("unknown host %q; known hosts: %s", h, e.hostNames())
		}
		only[h] = true
	}
	admins, err := e.Store.ListAdmins(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list admins: %w", err)
	}
	entries, creds, err := e.cibEntriesFor(ctx, admins, nil)
	if err != nil {
		return nil, nil, err
	}
	auth, err := e.Store.Get(ctx, keystore.AuthkeyID)
	if err != nil {
		return nil, nil, err
	}
	creds[auth.ID] = auth
	ds, err := e.serverDeliveries(entries, auth.Key, mode)
	if err != nil {
		return nil, nil, err
	}
	pw, err := e.currentPassword(ctx)
	if err != nil {
		return nil, nil, err
	}
	if pw.Key != nil {
		creds[pw.ID] = pw
		ds = e.withNodePassword(ds, pw.Key, mode)
	}
	keyOf := map[string]keys.Secret{}
	for _, en := range entries {
		keyOf[en.Identity] = en.Key
	}
	for _, a := range admins {
		for _, c := range a.Clients {
			var ws []wanted
			if !a.Active() {
				ws = e.removalWanted(a, c)
			} else if k, ok := keyOf[a.Identity]; ok {
				if ws, err = e.clientWanted(a, c, k, pw.Key, mode); err != nil {
					return nil, nil, err
				}
			} else {
				return nil, nil, fmt.Errorf("admin %s's identity %s has no key in the store", a.User, a.Identity)
			}
			h, ok := e.Config.Host(c.Host)
			if !ok {
				// Named in a record, gone from the config: a leftover
				// that status and push name, never a blocker.
				ds = append(ds, delivery{host: config.Host{Name: c.Host}, files: ws, orphan: true})
				continue
			}
			ds = append(ds, delivery{host: h, files: ws})
		}
	}
	ds = mergeByHost(ds)
	if len(only) == 0 {
		return ds, creds, nil
	}
	var out []delivery
	for _, d := range ds {
		if only[d.host.Name] {
			out = append(out, d)
		}
	}
	return out, creds, nil
}

// Push converges hosts to the store: every file that is missing or differs
// in content, owner or mode is rewritten; files in sync are left alone.
func Push(ctx context.Context, e *Env, hosts []string) (*Report, error) {
	rep := &Report{Action: "push", DryRun: e.DryRun}
	err := e.withLock(ctx, "push", func() error {
		ds, _, err := e.desired(ctx, writeIfDrift, hosts)
		if err != nil {
			return err
		}
		rep.Hosts, err = e.deliver(ctx, ds)
		return err
	})
	if errors.Is(err, keystore.ErrNotFound) {
		err = fmt.Errorf("%w (run pcmkeys init first)", err)
	}
	return rep, e.record(rep, hosts, err)
}
