package rotate

import (
	"context"
	"fmt"
	"slices"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"
)

// recordToOnboard is the record an onboarding of user starts from: theirs,
// a new one, or (a finished revocation) a new start over the tombstone.
func recordToOnboard(admins []keystore.Admin, user, ident string) (keystore.Admin, error) {
	admin, known := findAdmin(admins, user)
	switch {
	case known && admin.RevocationFinished():
		return keystore.Admin{Revision: admin.Revision}, nil // a new start
	case known && !admin.Active():
		return admin, badInput("the revocation of %s is not finished: run pcmkeys revoke %s until it exits 0, then onboard again", user, user)
	case known && admin.Identity != ident:
		return admin, fmt.Errorf("admin %s is recorded with identity %s, but identity_mode gives %s: revoke and onboard again", user, admin.Identity, ident)
	}
	return admin, nil
}

// onboardDeliveries are the files of an onboarding: in per-user mode
// every node's cib-credentials with the admin's key, then on each client
// host their key, password and env files (a rerun writes nothing that is
// in sync), and the old files where the recorded paths changed.
func (e *Env) onboardDeliveries(ctx context.Context, admin keystore.Admin, admins []keystore.Admin, clients []client, entry keystore.Client, cred keystore.Credential, pw keys.Secret, rep *Report) ([]deliver.Host, error) {
	var ds []deliver.Host
	if e.Config.Policy.IdentityMode == policies.PerUser {
		entries, _, err := e.cibEntriesFor(ctx, activeExcept(admins, admin.User), map[keystore.ID]keys.Secret{cred.ID: cred.Key})
		if err != nil {
			return nil, err
		}
		if ds, err = e.serverDeliveries(entries, nil, deliver.WriteIfDrift); err != nil {
			return nil, err
		}
	}
	for _, c := range clients {
		entry.Host = c.host.Name
		ws, err := e.clientWanted(admin, entry, cred.Key, pw, deliver.WriteIfDrift)
		if err != nil {
			return nil, err
		}
		if old, ok := recordedClient(admin, c.host.Name); ok {
			// A changed path: the old files go.
			for _, w := range e.removalWanted(admin, old) {
				if !slices.Contains(entryPaths(entry), w.File.Path) {
					ws = append(ws, w)
				}
			}
		}
		if rep.ClientEnv == nil {
			env := e.clientEnv(admin.Identity, entry.KeyFile, entry.PasswordFile, c.account.Home)
			rep.ClientEnv = &env
		}
		ds = append(ds, deliver.Host{Host: c.host, Conn: c.conn, Files: ws, Homes: map[string]string{admin.User: c.account.Home}})
	}
	return ds, nil
}

// recordClients records the client hosts whose files were all delivered
// (a record that would not change is not written again), and returns how
// many there were.
func (e *Env) recordClients(ctx context.Context, admin keystore.Admin, clients []client, entry keystore.Client, results []HostResult) (int, error) {
	before := fmt.Sprint(admin)
	delivered := 0
	for _, c := range clients {
		if clientDelivered(results, c.host.Name, entryPaths(entry)) {
			entry.Host = c.host.Name
			admin.Clients = setClient(admin.Clients, entry)
			delivered++
		}
	}
	if delivered == 0 {
		return 0, nil
	}
	if admin.Onboarded.IsZero() {
		admin.Onboarded = e.now()
	}
	if fmt.Sprint(admin) != before {
		if _, err := e.Store.PutAdmin(ctx, admin); err != nil {
			return delivered, fmt.Errorf("record admin %s: %w", admin.User, err)
		}
	}
	return delivered, nil
}

// entryPaths lists a client entry's files.
func entryPaths(c keystore.Client) []string {
	out := []string{c.KeyFile, c.EnvFile}
	if c.PasswordFile != "" {
		out = append(out, c.PasswordFile)
	}
	return out
}

func recordedClient(a keystore.Admin, host string) (keystore.Client, bool) {
	for _, c := range a.Clients {
		if c.Host == host {
			return c, true
		}
	}
	return keystore.Client{}, false
}

// clientDelivered reports whether every one of paths was written on host,
// or found in sync.
func clientDelivered(results []HostResult, host string, paths []string) bool {
	return allFiles(results, host, paths, func(f FileStep) bool {
		return f.Action == ActionWritten || f.Action == ActionInSync
	})
}

// allFiles reports whether every one of paths has a step on host for which
// ok holds.
func allFiles(results []HostResult, host string, paths []string, ok func(FileStep) bool) bool {
	done := map[string]bool{}
	for _, r := range results {
		if r.Host != host {
			continue
		}
		for _, f := range r.Files {
			if ok(f) {
				done[f.Path] = true
			}
		}
	}
	for _, p := range paths {
		if !done[p] {
			return false
		}
	}
	return true
}

// setClient adds c to cs, replacing an entry for the same host.
func setClient(cs []keystore.Client, c keystore.Client) []keystore.Client {
	for i := range cs {
		if cs[i].Host == c.Host {
			cs[i] = c
			return cs
		}
	}
	return append(cs, c)
}

// activeExcept returns the active admins other than user.
func activeExcept(admins []keystore.Admin, user string) []keystore.Admin {
	var out []keystore.Admin
	for _, a := range admins {
		if a.User != user && a.Active() {
			out = append(out, a)
		}
	}
	return out
}
