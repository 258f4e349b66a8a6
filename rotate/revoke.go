package rotate

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// Revoke takes access away from admins everywhere at once, favouring speed
// and completeness over consistency, in this order:
//
//  1. mark them revoked in the store (no workflow gives them anything from
//     here on, and a rerun knows the job is unfinished);
//  2. cut every node: per-user mode, a cib-credentials without their lines;
//     shared mode, a new shared key staged on every node, stored, then
//     committed on every node that staged it;
//  3. close the live remote-CIB sessions on every node that was cut;
//  4. give the shared key in force to the remaining admins;
//  5. delete the revoked admins' client files, each file on its own.
//
// Exit 0 (a nil error) means: no node accepts a revoked key, no live
// session remained on any node, and every file of theirs is gone; the
// record then stays as a tombstone (Finished), and revoking them again
// says "already revoked". Anything else is a *PartialError listing every
// leftover by host and file; a rerun finishes it without rotating again
// when the nodes were already cut.
func Revoke(ctx context.Context, e *Env, users []string) (*Report, error) {
	return e.run(ctx, workflow{
		action: "revoke", args: users,
		validate: func() error {
			if len(users) == 0 {
				return badInput("name the admins to revoke")
			}
			if err := validUsers(users); err != nil {
				return err
			}
			if e.Config.Policy.IdentityMode == policies.Shared {
				// A new shared key is staged on every node (a rerun
				// whose nodes were cut stages nothing; counted anyway).
				return e.checkFDs("revoke in shared mode", []policies.FileKind{policies.CIBCredentials})
			}
			return nil
		},
		act: func(ctx context.Context, rep *Report) error { return e.revoke(ctx, users, rep) },
	})
}

// revocation is the plan of one revoke run, made before any write.
type revocation struct {
	targets   []keystore.Admin // unfinished revocations, this run's to finish
	remaining []keystore.Admin // admins who keep access
}

func (e *Env) planRevocation(ctx context.Context, users []string, rep *Report) (*revocation, error) {
	admins, err := e.Store.ListAdmins(ctx)
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	plan := &revocation{}
	asked := map[string]bool{}
	for _, u := range users {
		if asked[u] {
			continue
		}
		asked[u] = true
		a, ok := findAdmin(admins, u)
		switch {
		case !ok:
			return nil, badInput("%s is not an admin (nothing to revoke)", u)
		case a.RevocationFinished():
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: already revoked (finished %s)", u, a.Finished.Format("2006-01-02 15:04:05Z")))
		default:
			plan.targets = append(plan.targets, a)
		}
	}
	for _, a := range admins {
		if !asked[a.User] && a.Active() {
			plan.remaining = append(plan.remaining, a)
		}
	}
	return plan, nil
}

func (e *Env) revoke(ctx context.Context, users []string, rep *Report) error {
	plan, err := e.planRevocation(ctx, users, rep)
	if err != nil || len(plan.targets) == 0 {
		return err
	}
	removals, leftovers := e.removalDeliveries(plan.targets)

	// 1. Mark.
	for i, a := range plan.targets {
		if !a.Active() || e.DryRun {
			continue
		}
		a.Revoked = e.now()
		if plan.targets[i], err = e.Store.PutAdmin(ctx, a); err != nil {
			return fmt.Errorf("mark %s revoked: %w", a.User, err)
		}
	}
	// 2, 3. Cut the nodes and close their live sessions. A node that is
	// also a client host of the wave logs in once: the cut keeps its
	// connection for the wave (deliver.Keep).
	wave := deliver.Names(removals)
	if e.Config.Policy.IdentityMode == policies.Shared {
		for _, a := range plan.remaining {
			for _, c := range a.Clients {
				wave = append(wave, c.Host)
			}
		}
	}
	first, kept := deliver.Keep(ctx, wave)
	defer kept.Close()
	nodes, key, pw, rotated, err := e.cutNodes(first, plan, rep)
	rep.Hosts = append(rep.Hosts, nodes...)
	if err != nil {
		return err
	}
	// 4, 5. The remaining admins' new key and the revoked admins' files,
	// in one wave.
	ds := removals
	if key != nil {
		mode := deliver.WriteIfDrift
		if rotated {
			mode = deliver.WriteAlways
		}
		clients, err := e.clientDeliveries(plan.remaining, map[keystore.ID]keys.Secret{keystore.CIB(policies.SharedIdentity): key}, pw, mode)
		if err != nil {
			return err
		}
		ds = append(ds, clients...)
	}
	clients, _ := e.engine().Deliver(kept.Reuse(ctx), ds)
	kept.Close()
	rep.Hosts = append(rep.Hosts, clients...)
	rep.Hosts = append(rep.Hosts, leftovers...)
	if e.DryRun {
		return deliver.Partial(rep.Hosts)
	}
	if !e.Config.CIB.CloseSessions {
		rep.Notes = append(rep.Notes, "live remote-CIB sessions were not closed (cib.close_sessions: false): a revoked admin who is connected stays connected until pacemaker-based restarts")
	}
	e.finishRevocations(ctx, plan, allOK(nodes), clients, rep)
	if err := deliver.Partial(rep.Hosts); err != nil {
		rep.Notes = append(rep.Notes, "the revocation is not finished: fix or bring back the hosts listed and run revoke again (it will not rotate again if the nodes were cut)")
		return err
	}
	return nil
}

// cutNodes puts on every node a cib-credentials that no longer accepts the
// revoked admins' keys (and in shared mode hacluster's new password, when
// pcmkeys manages it), then closes the node's live sessions. In shared
// mode it returns the shared key and password now in force, and whether
// this run made them.
func (e *Env) cutNodes(ctx context.Context, plan *revocation, rep *Report) ([]HostResult, keys.Secret, keys.Secret, bool, error) {
	if e.Config.Policy.IdentityMode == policies.PerUser {
		entries, _, err := e.cibEntriesFor(ctx, plan.remaining, nil)
		if err != nil {
			return nil, nil, nil, false, err
		}
		if entries == nil {
			entries = []credfile.Entry{} // the last admin: an empty file
		}
		ds, err := e.cutDeliveries(entries, nil, deliver.WriteIfDrift)
		if err != nil {
			return nil, nil, nil, false, err
		}
		res, _ := e.engine().Deliver(ctx, ds)
		return res, nil, nil, false, nil
	}

	id := keystore.CIB(policies.SharedIdentity)
	cur, err := e.Store.Get(ctx, id)
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("the shared key: %w", err)
	}
	curPW, err := e.currentPassword(ctx)
	if err != nil {
		return nil, nil, nil, false, err
	}
	if !needsNewKey(plan.targets, cur.Version.Version) && (curPW.Key != nil || !e.managesPassword()) {
		// A rerun: the key in force was made after they lost theirs.
		ds, err := e.cutDeliveries([]credfile.Entry{{Identity: policies.SharedIdentity, Key: cur.Key}}, curPW.Key, deliver.WriteIfDrift)
		if err != nil {
			return nil, nil, nil, false, err
		}
		res, _ := e.engine().Deliver(ctx, ds)
		return res, cur.Key, curPW.Key, false, nil
	}
	fresh, err := e.generate(keys.PSK)
	if err != nil {
		return nil, nil, nil, false, err
	}
	var freshPW keys.Secret
	if e.managesPassword() {
		if freshPW, err = e.generate(keys.Password); err != nil {
			return nil, nil, nil, false, err
		}
	}
	ds, err := e.cutDeliveries([]credfile.Entry{{Identity: policies.SharedIdentity, Key: fresh}}, freshPW, deliver.WriteAlways)
	if err != nil {
		return nil, nil, nil, false, err
	}
	if e.DryRun {
		rep.Credentials = append(rep.Credentials, CredentialChange{ID: id, Version: cur.Version.Version + 1, Created: true})
		if freshPW != nil {
			rep.Credentials = append(rep.Credentials, CredentialChange{ID: sharedPasswordID, Version: curPW.Version.Version + 1, Created: true})
		}
		res, _ := e.engine().Deliver(ctx, ds)
		return res, fresh, freshPW, true, nil
	}
	// Stage everywhere it can; a node that cannot stage is a leftover,
	// never a reason to leave the others accepting the revoked key.
	staged, results := e.engine().Stage(ctx, ds)
	if freshPW != nil {
		// The password first: stored but set nowhere yet, it harms no one
		// if the key's write then fails.
		v, err := e.Store.Put(ctx, sharedPasswordID, freshPW, keystore.PutOptions{CAS: curPW.Version.Version, CreatedBy: e.Operator})
		if err != nil {
			staged.Abort(ctx)
			return results, nil, nil, false, fmt.Errorf("store hacluster's new password: %w (nothing committed; the admins stay marked revoked: run revoke again)", err)
		}
		rep.Credentials = append(rep.Credentials, CredentialChange{ID: sharedPasswordID, Version: v.Version, Fingerprint: v.Fingerprint, Created: true})
	}
	v, err := e.Store.Put(ctx, id, fresh, keystore.PutOptions{CAS: cur.Version.Version, CreatedBy: e.Operator, Holders: holdersOf(plan.remaining, id)})
	if err != nil {
		staged.Abort(ctx)
		return results, nil, nil, false, fmt.Errorf("store the new shared key: %w (nothing committed; the admins stay marked revoked: run revoke again)", err)
	}
	rep.Credentials = append(rep.Credentials, CredentialChange{ID: id, Version: v.Version, Fingerprint: v.Fingerprint, Created: true})
	results = staged.Commit(ctx) // a node that could not stage keeps its failure
	for i, a := range plan.targets {
		a.CutVersion = v.Version
		if plan.targets[i], err = e.Store.PutAdmin(ctx, a); err != nil {
			// The next run rotates once more: safe, only slower.
			e.log().Error("record the cut", "admin", a.User, "err", err)
			plan.targets[i] = a
		}
	}
	return results, fresh, freshPW, true, nil
}

// needsNewKey reports whether some admin still holds a shared key the
// nodes may accept: one whose revocation never stored a cut version, or
// whose cut version is newer than the store's (a store restored from a
// backup).
func needsNewKey(targets []keystore.Admin, current int) bool {
	for _, a := range targets {
		if a.CutVersion == 0 || a.CutVersion > current {
			return true
		}
	}
	return false
}

// cutDeliveries are the cib-credentials of every node with entries, then
// hacluster's password pw (if any) and the closing of the node's live
// sessions. With writeAlways (a staged rotation) the password is set after
// the commit; otherwise it is one more file of the wave.
func (e *Env) cutDeliveries(entries []credfile.Entry, pw keys.Secret, mode deliver.Mode) ([]deliver.Host, error) {
	ds, err := e.serverDeliveries(entries, nil, mode)
	if err != nil {
		return nil, err
	}
	if mode == deliver.WriteAlways {
		for i := range ds {
			e.cutSteps(&ds[i], pw)
		}
		return ds, nil
	}
	ds = e.withNodePassword(ds, pw, mode)
	for i := range ds {
		e.cutSteps(&ds[i], nil)
	}
	return ds, nil
}

func allOK(results []HostResult) bool {
	for _, r := range results {
		if r.Status != StatusOK {
			return false
		}
	}
	return true
}

// finishRevocations updates the records: client entries whose files are
// gone leave the record; a revocation with nothing left (every node cut
// and its sessions closed, every file gone) is finished, and in per-user
// mode the admin's key is destroyed.
func (e *Env) finishRevocations(ctx context.Context, plan *revocation, nodesCut bool, clients []HostResult, rep *Report) {
	for _, a := range plan.targets {
		var left []keystore.Client
		for _, c := range a.Clients {
			if !clientFilesGone(clients, a.User, e.recordedPaths(c), c.Host) {
				left = append(left, c)
			}
		}
		changed := len(left) != len(a.Clients)
		a.Clients = left
		if nodesCut && len(left) == 0 {
			if e.Config.Policy.IdentityMode == policies.PerUser {
				if err := e.destroyKey(ctx, keystore.CIB(a.Identity), rep); err != nil {
					rep.Hosts = append(rep.Hosts, HostResult{Host: "store", Status: StatusFailed, Error: fmt.Sprintf("destroy the key of %s: %v", a.User, err)})
					continue
				}
			}
			a.Finished = e.now()
			changed = true
		}
		if !changed {
			continue
		}
		if _, err := e.Store.PutAdmin(ctx, a); err != nil {
			rep.Hosts = append(rep.Hosts, HostResult{Host: "store", Status: StatusFailed, Error: fmt.Sprintf("update the record of %s: %v", a.User, err)})
		}
	}
}

// clientFilesGone reports whether the wave removed every one of paths on
// host (or found them gone, or not the admin's).
func clientFilesGone(results []HostResult, user string, paths []string, host string) bool {
	return allFiles(results, host, paths, func(f FileStep) bool {
		return f.Owner == user && (f.Action == ActionRemoved || f.Action == ActionNotTheirs)
	})
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
