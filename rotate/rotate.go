package rotate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/rotate/internal/crmmon"
	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// Request says which keys to rotate. With none of its fields set,
// the CIB keys are rotated.
type Request struct {
	// Users, in per-user mode, rotates these admins' keys.
	Users []string
	// CIB rotates every CIB key (the shared one, or every admin's).
	CIB bool
	// Authkey rotates the Pacemaker Remote authkey.
	Authkey bool
	// Due keeps, of the keys selected (all of them if nothing else is
	// set), those older than the policy's rotate_after.
	Due bool
	// Restart rotates the authkey on the live cluster: it reads and checks
	// the cluster first, turns maintenance mode on, commits the new key,
	// restarts every daemon that reads the key only at start (remote nodes
	// first, then full nodes one at a time, each waited until the cluster
	// sees it back), restores maintenance mode, waits until the cluster has
	// settled, and rolls back if a step fails.
	Restart bool
	// Override names prechecks of the live cluster to go past.
	Override []string
	// Hosts, if any, limits which client hosts get the admins' new keys
	// now (push delivers the rest). Nodes cannot be left out: a new key is
	// staged and committed on every node at once.
	Hosts []string
}

// Rotate gives the selected credentials new keys, staged then committed:
// the new server files are staged beside the old ones on every node; only
// when every node has them is the store written (check-and-set) and the
// files committed everywhere at once. If staging fails anywhere, every
// staged file is removed, the store is left alone and the old keys stay in
// force. Admins' client files are written after the commit; a client that
// cannot be reached is reported (exit 3) and push finishes it.
func Rotate(ctx context.Context, e *Env, req Request) (*Report, error) {
	return e.run(ctx, workflow{
		action: "rotate", args: req.Users,
		validate: func() error {
			if err := validUsers(req.Users); err != nil {
				return err
			}
			hosts, err := e.selectHosts(req.Hosts)
			for _, h := range hosts {
				if err == nil && len(req.Hosts) > 0 && h.Role != config.RoleClient {
					err = badInput("%s is a %s: a rotation stages and commits on every node at once; --host names only client hosts, to limit which get the new key now (push delivers the rest)", h.Name, h.Role)
				}
			}
			if err == nil {
				err = e.checkFDs("rotate", rotationKinds(req))
			}
			return err
		},
		act: func(ctx context.Context, rep *Report) error { return e.rotate(ctx, req, rep) },
	})
}

// rotation is a rotation's plan: the keys it replaces, their new ones,
// and the files the hosts get.
type rotation struct {
	admins  []keystore.Admin
	ids     []keystore.ID
	current map[keystore.ID]keystore.Credential
	fresh   map[keystore.ID]keys.Secret
	// servers are staged on every node and committed at once; clients
	// follow the commit.
	servers, clients []deliver.Host
	// live, for an authkey rotated on the live cluster.
	live *liveRotation
}

func (e *Env) rotate(ctx context.Context, req Request, rep *Report) error {
	r, err := e.planRotation(ctx, req, rep)
	switch {
	case err != nil || r == nil:
		return err
	case e.DryRun:
		for _, id := range r.ids {
			rep.Credentials = append(rep.Credentials, CredentialChange{ID: id, Version: r.current[id].Version.Version + 1, Created: true})
		}
		rep.Hosts, err = e.engine().Deliver(ctx, append(r.servers, r.clients...))
		if r.fresh[keystore.AuthkeyID] != nil && r.live == nil {
			rep.Restart = e.restartPlan(ctx, false)
			rep.Notes, _ = restartNotes(rep.Restart)
		}
		return err
	}
	// A node that is also a client host logs in once: the commit keeps
	// its connection for the client files (deliver.Keep).
	first, kept := deliver.Keep(ctx, deliver.Names(r.clients))
	defer kept.Close()
	committed, err := e.commitRotation(first, r, rep)
	if err != nil {
		return err
	}
	clientResults, _ := e.engine().Deliver(kept.Reuse(ctx), r.clients)
	kept.Close()
	rep.Hosts = append(rep.Hosts, clientResults...)
	switch {
	case r.live != nil:
		return e.finishLive(ctx, r.live, r.current[keystore.AuthkeyID].Key, committed, rep)
	case r.fresh[keystore.AuthkeyID] != nil:
		if err := deliver.Partial(rep.Hosts); err != nil {
			rep.Notes = append(rep.Notes, "not every node holds the new authkey: no node was restarted; run push, then restart")
			return err
		}
		rep.Restart = e.restartPlan(ctx, req.Restart)
		notes, failed := restartNotes(rep.Restart)
		rep.Notes = append(rep.Notes, notes...)
		rep.Hosts = append(rep.Hosts, failed...)
	}
	return deliver.Partial(rep.Hosts)
}

// planRotation selects the keys, makes their new ones and the files, and
// for a live authkey rotation reads and checks the cluster, all before
// anything changes. It returns nil when nothing is to be rotated.
func (e *Env) planRotation(ctx context.Context, req Request, rep *Report) (*rotation, error) {
	admins, err := e.Store.ListAdmins(ctx)
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	ids, err := e.selectRotation(ctx, req, admins)
	if err != nil {
		return nil, err
	}
	if slices.Contains(ids, keystore.AuthkeyID) && !req.Restart {
		// A bare write of the authkey on a live cluster fences remote nodes
		// at the next reconnect: only the live procedure may do it.
		if node, live := e.liveCluster(ctx); live {
			if !req.Due {
				return nil, badInput("%s answers crm_mon: this is a live cluster, and a bare write of the authkey fences its remote nodes at the next reconnect; use rotate --authkey --restart (maintenance mode, restarts, rollback), or stop the cluster first", node)
			}
			ids = slices.DeleteFunc(ids, func(id keystore.ID) bool { return id == keystore.AuthkeyID })
			rep.Notes = append(rep.Notes, "the authkey is due, but the cluster is live: run pcmkeys rotate --authkey --restart (the scheduled job rotates only the CIB keys)")
		}
	}
	if len(ids) == 0 {
		rep.Notes = append(rep.Notes, "nothing to rotate: no selected key is due")
		return nil, nil
	}
	if e.managesPassword() && slices.Contains(ids, keystore.CIB(policies.SharedIdentity)) {
		ids = append(ids, sharedPasswordID) // rotated with the shared key
	}
	r := &rotation{admins: admins, ids: ids}
	if r.current, r.fresh, err = e.newKeys(ctx, ids); err != nil {
		return nil, err
	}
	if r.servers, err = e.rotationServerFiles(ctx, admins, r.fresh); err != nil {
		return nil, err
	}
	if r.clients, err = e.clientDeliveries(admins, r.fresh, r.fresh[sharedPasswordID], deliver.WriteAlways); err != nil {
		return nil, err
	}
	if len(req.Hosts) > 0 {
		r.clients = slices.DeleteFunc(r.clients, func(d deliver.Host) bool { return !slices.Contains(req.Hosts, d.Host.Name) })
		rep.Notes = append(rep.Notes, "only the client hosts named got the new key now: run pcmkeys push to deliver it to the others")
	}
	// A live authkey rotation reads and checks the cluster before
	// anything changes (a dry run shows those checks and the plan).
	if r.fresh[keystore.AuthkeyID] != nil && req.Restart {
		override, err := overrideSet(req.Override)
		if err != nil {
			return nil, err
		}
		if r.live, err = e.startLive(ctx, override, rep); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// newKeys reads the current version of each credential and makes its new
// key.
func (e *Env) newKeys(ctx context.Context, ids []keystore.ID) (map[keystore.ID]keystore.Credential, map[keystore.ID]keys.Secret, error) {
	current := map[keystore.ID]keystore.Credential{}
	fresh := map[keystore.ID]keys.Secret{}
	for _, id := range ids {
		cred, err := e.Store.Get(ctx, id)
		switch {
		case id == sharedPasswordID && errors.Is(err, keystore.ErrNotFound):
			err = nil // a store from before passwords were managed: create it
		case errors.Is(err, keystore.ErrDestroyed):
			// The way out when a current version was destroyed (by Vault's
			// delete_version_after, say): a new version over it.
			e.log().Warn("the current version was destroyed: writing a new one", "credential", id, "version", cred.Version.Version)
			err = nil
		}
		if err != nil {
			return nil, nil, err
		}
		current[id] = cred
		if fresh[id], err = e.generate(id.Kind()); err != nil {
			return nil, nil, err
		}
	}
	return current, fresh, nil
}

// commitRotation stages the server files on every node, stores the new
// keys (check-and-set) and commits the files everywhere at once, and
// returns when. If staging or the store fails, every staged file is
// removed and the old keys stay in force.
func (e *Env) commitRotation(ctx context.Context, r *rotation, rep *Report) (time.Time, error) {
	staged, results := e.engine().Stage(ctx, r.servers)
	if err := deliver.Partial(results); err != nil {
		staged.Abort(ctx)
		rep.Hosts = results
		rep.Notes = append(rep.Notes, "staging failed: every staged file was removed; the old keys stay in force")
		return time.Time{}, err
	}
	if r.live != nil {
		if err := r.live.maintenanceOn(ctx); err != nil {
			staged.Abort(ctx)
			rep.Hosts = results
			return time.Time{}, errors.Join(fmt.Errorf("maintenance mode: %w (staged files removed; no host changed)", err), r.live.maintenanceRestore(ctx))
		}
	}
	for _, id := range r.ids {
		v, err := e.Store.Put(ctx, id, r.fresh[id], keystore.PutOptions{CAS: r.current[id].Version.Version, CreatedBy: e.Operator, Holders: holdersOf(r.admins, id)})
		if err != nil {
			// Keys stored before this one are not yet on any host; push
			// delivers them. Nothing was committed.
			staged.Abort(ctx)
			rep.Hosts = results
			err = fmt.Errorf("store new %s: %w (staged files removed; no host changed)", id, err)
			if r.live != nil {
				err = errors.Join(err, r.live.maintenanceRestore(ctx))
			}
			return time.Time{}, err
		}
		rep.Credentials = append(rep.Credentials, CredentialChange{ID: id, Version: v.Version, Fingerprint: v.Fingerprint, Created: true})
	}
	rep.Hosts = staged.Commit(ctx)
	return time.Now(), nil
}

// finishLive takes a live authkey rotation from the commit to its end:
// restarts, maintenance mode back, the cluster settled, post-checks; a
// failure anywhere rolls the old key back.
func (e *Env) finishLive(ctx context.Context, lv *liveRotation, old keys.Secret, committed time.Time, rep *Report) error {
	lv.log("", "new authkey committed everywhere", okOr(deliver.Partial(rep.Hosts)))
	newVersion := 0
	for _, c := range rep.Credentials {
		if c.ID == keystore.AuthkeyID && c.Created {
			newVersion = c.Version
		}
	}
	err := deliver.Partial(rep.Hosts)
	if err == nil {
		err = lv.restartAll(ctx, committed)
	}
	if err == nil {
		// Lift maintenance mode only on a quiet cluster.
		err = lv.waitFor(ctx, "", restartBound, func(st *crmmon.State) string { return st.Idle() })
	}
	if err == nil {
		err = lv.maintenanceRestore(ctx)
	}
	if err == nil {
		err = lv.settle(ctx)
	}
	if err == nil {
		err = lv.postChecks(ctx)
	}
	if err == nil {
		lv.log("", "done", fmt.Sprintf("the new authkey is in force everywhere (%.1f s)", time.Since(lv.began).Seconds()))
		return nil
	}
	rbErr := lv.rollback(ctx, old, newVersion, err)
	return errors.Join(fmt.Errorf("the authkey rotation failed and was rolled back: %w", err), rbErr)
}

// selectRotation turns a request into credential IDs.
func (e *Env) selectRotation(ctx context.Context, req Request, admins []keystore.Admin) ([]keystore.ID, error) {
	pol := e.Config.Policy
	none := !req.CIB && !req.Authkey && len(req.Users) == 0
	set := map[keystore.ID]bool{}
	if len(req.Users) > 0 {
		if pol.IdentityMode == policies.Shared {
			return nil, badInput("in shared mode every admin holds the same key: rotate it with --cib")
		}
		for _, u := range req.Users {
			if err := policies.ValidateUser(u); err != nil {
				return nil, badInput("%v", err)
			}
			a, ok := findAdmin(admins, u)
			if !ok || !a.Active() {
				return nil, badInput("%s is not an admin", u)
			}
			set[keystore.CIB(a.Identity)] = true
		}
	}
	if req.CIB || none {
		if pol.IdentityMode == policies.Shared {
			set[keystore.CIB(policies.SharedIdentity)] = true
		} else {
			for _, a := range admins {
				if a.Active() {
					set[keystore.CIB(a.Identity)] = true
				}
			}
		}
	}
	if req.Authkey || (none && req.Due) {
		set[keystore.AuthkeyID] = true
	}
	if req.Restart && !set[keystore.AuthkeyID] {
		return nil, badInput("--restart goes with --authkey: only the authkey needs a restart")
	}
	var ids []keystore.ID
	for id := range set {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if !req.Due {
		return ids, nil
	}
	var due []keystore.ID
	now := e.now()
	for _, id := range ids {
		hist, err := e.Store.History(ctx, id)
		if errors.Is(err, keystore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !now.Before(pol.Due(id.Kind(), hist[len(hist)-1].Created)) {
			due = append(due, id)
		}
	}
	return due, nil
}

func findAdmin(admins []keystore.Admin, user string) (keystore.Admin, bool) {
	for _, a := range admins {
		if a.User == user {
			return a, true
		}
	}
	return keystore.Admin{}, false
}

// rotationServerFiles renders the server files with the fresh keys.
func (e *Env) rotationServerFiles(ctx context.Context, admins []keystore.Admin, fresh map[keystore.ID]keys.Secret) ([]deliver.Host, error) {
	newCIB := slices.ContainsFunc(slices.Collect(maps.Keys(fresh)), func(id keystore.ID) bool { return id.Identity() != "" })
	var entries []credfile.Entry
	if newCIB {
		var err error
		if entries, _, err = e.cibEntriesFor(ctx, admins, fresh); err != nil {
			return nil, err
		}
	}
	ds, err := e.serverDeliveries(entries, fresh[keystore.AuthkeyID], deliver.WriteAlways)
	if err != nil || !newCIB {
		return ds, err
	}
	// A new CIB key does not end the sessions the old one opened; a new
	// password is set once the node holds the new key.
	for i := range ds {
		e.cutSteps(&ds[i], fresh[sharedPasswordID])
	}
	return ds, nil
}
