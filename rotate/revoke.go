package rotate

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// Revoke takes access away from admins everywhere at once, favouring speed
// and completeness over consistency. The admins are first marked revoked in
// the store; then one parallel wave rewrites every node's cib-credentials
// (per-user mode: without their lines; shared mode: with a new shared key,
// also written to every remaining admin), and deletes the revoked admins'
// client files. Every host that could not be reached is named (exit 3);
// the records stay marked until a rerun has reached them all, and only then
// are their key versions destroyed (per-user mode) and records deleted.
func Revoke(ctx context.Context, e *Env, users []string) (*Report, error) {
	rep := &Report{Action: "revoke", DryRun: e.DryRun}
	if len(users) == 0 {
		return rep, badInput("name the admins to revoke")
	}
	for _, u := range users {
		if err := policies.ValidateUser(u); err != nil {
			return rep, badInput("%v", err)
		}
	}
	err := e.withLock(ctx, "revoke", func() error { return e.revoke(ctx, users, rep) })
	return rep, e.record(rep, users, err)
}

func (e *Env) revoke(ctx context.Context, users []string, rep *Report) error {
	admins, err := e.Store.ListAdmins(ctx)
	if err != nil {
		return fmt.Errorf("list admins: %w", err)
	}
	revoked := map[string]keystore.Admin{}
	for _, u := range users {
		a, ok := findAdmin(admins, u)
		if !ok {
			return badInput("%s is not an admin (nothing to revoke)", u)
		}
		revoked[u] = a
	}
	// Mark first: from here on no workflow gives them anything, and a
	// rerun knows the revocation is unfinished.
	for u, a := range revoked {
		if !a.Active() || e.DryRun {
			continue
		}
		a.Revoked = e.now()
		if a, err = e.Store.PutAdmin(ctx, a); err != nil {
			return fmt.Errorf("mark %s revoked: %w", u, err)
		}
		revoked[u] = a
	}

	var remaining []keystore.Admin
	for _, a := range admins {
		if _, gone := revoked[a.User]; !gone && a.Active() {
			remaining = append(remaining, a)
		}
	}

	var fresh keys.Secret
	var entries []credfile.Entry
	var shared keystore.Credential
	if e.Config.Policy.IdentityMode == policies.Shared {
		id := keystore.CIB(policies.SharedIdentity)
		if shared, err = e.Store.Get(ctx, id); err != nil {
			return err
		}
		if fresh, err = keys.Generate(keys.PSK, e.Config.Policy.PSKBytes); err != nil {
			return err
		}
		if !e.DryRun {
			v, err := e.Store.Put(ctx, id, fresh, keystore.PutOptions{CAS: shared.Version.Version, CreatedBy: e.Operator, Holders: holdersOf(remaining, id)})
			if err != nil {
				return fmt.Errorf("store the new shared key: %w", err)
			}
			rep.Credentials = append(rep.Credentials, CredentialChange{ID: id, Version: v.Version, Fingerprint: v.Fingerprint, Created: true})
		}
		entries, _, err = e.cibEntriesFor(ctx, remaining, map[string]keys.Secret{policies.SharedIdentity: fresh})
	} else {
		entries, _, err = e.cibEntriesFor(ctx, remaining, nil)
	}
	if err != nil {
		return err
	}

	ds, err := e.serverDeliveries(entries, nil, writeAlways)
	if err != nil {
		return err
	}
	mustReach := map[string]bool{}
	for _, d := range ds {
		mustReach[d.host.Name] = true
	}
	for _, a := range revoked {
		for _, c := range a.Clients {
			d, err := e.hostDelivery(c.Host, removalWanted(a, c))
			if err != nil {
				return err
			}
			ds = append(ds, d)
			mustReach[c.Host] = true
		}
	}
	if fresh != nil {
		clients, err := e.rotationClientFiles(remaining, map[keystore.ID]keys.Secret{keystore.CIB(policies.SharedIdentity): fresh})
		if err != nil {
			return err
		}
		ds = append(ds, clients...)
	}
	rep.Hosts, err = e.deliver(ctx, ds)
	if e.DryRun {
		return err
	}
	// Finish in the store only once every host that mattered was reached.
	for _, r := range rep.Hosts {
		if mustReach[r.Host] && r.Status != StatusOK {
			rep.Notes = append(rep.Notes, "not every host was reached: the admins stay marked revoked; run revoke again to finish")
			return err
		}
	}
	for u, a := range revoked {
		if e.Config.Policy.IdentityMode == policies.PerUser {
			if derr := e.destroyKey(ctx, keystore.CIB(a.Identity), rep); derr != nil {
				return errors.Join(err, derr)
			}
		}
		if derr := e.Store.DeleteAdmin(ctx, u, a.Revision); derr != nil && !errors.Is(derr, keystore.ErrNotFound) {
			return errors.Join(err, fmt.Errorf("delete the record of %s: %w", u, derr))
		}
	}
	return err
}

// destroyKey erases every version of a revoked admin's key.
func (e *Env) destroyKey(ctx context.Context, id keystore.ID, rep *Report) error {
	hist, err := e.Store.History(ctx, id)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	last := hist[len(hist)-1]
	if last.Destroyed {
		return nil
	}
	if err := e.Store.Destroy(ctx, id, last.Version); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	rep.Credentials = append(rep.Credentials, CredentialChange{ID: id, Version: last.Version, Fingerprint: last.Fingerprint, Destroyed: true})
	return nil
}
