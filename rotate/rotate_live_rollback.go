package rotate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// rollback puts the old key back everywhere, in the store as a new version
// over the rotated one (cas), restarts again the daemons that were
// restarted with the new key, all inside maintenance mode, and then
// restores maintenance mode. What it could not do is said with the step
// that finishes it by hand.
func (lv *liveRotation) rollback(ctx context.Context, old keys.Secret, cas int, cause error) error {
	ctx = context.WithoutCancel(ctx)
	e := lv.e
	lv.log("", "rollback", "because: "+cause.Error())
	if !lv.maintOn && !lv.before.Maintenance {
		if err := lv.maintenanceOn(ctx); err != nil {
			lv.rep.Notes = append(lv.rep.Notes, "rollback: could not turn maintenance mode on: "+err.Error())
		}
	}
	var errs []error
	if v, err := e.Store.Put(ctx, keystore.AuthkeyID, old, keystore.PutOptions{CAS: cas, CreatedBy: e.Operator + " (rollback)"}); err != nil {
		errs = append(errs, fmt.Errorf("store the old authkey again: %w", err))
	} else {
		lv.rep.Credentials = append(lv.rep.Credentials, CredentialChange{ID: keystore.AuthkeyID, Version: v.Version, Fingerprint: v.Fingerprint, Created: true})
		lv.log("", "old authkey in the store", fmt.Sprintf("version %d", v.Version))
	}
	ds, err := e.serverDeliveries(nil, old, deliver.WriteAlways)
	if err == nil {
		res, derr := e.engine().Deliver(ctx, ds)
		lv.rep.Hosts = append(lv.rep.Hosts, res...)
		if derr != nil {
			errs = append(errs, fmt.Errorf("write the old authkey back: %w", derr))
		}
		lv.log("", "old authkey on every host", okOr(derr))
	}
	for _, h := range lv.done {
		for _, s := range lv.plan {
			if s.Host == h.Name {
				if err := lv.restart(ctx, s); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := lv.maintenanceRestore(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := lv.settle(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		lv.rep.Notes = append(lv.rep.Notes, "THE ROLLBACK DID NOT FINISH: check the cluster (crm_mon), put the authkey of the store's current version on every node (pcmkeys push), restart the daemons that hold another, then clear maintenance mode")
		return err
	}
	lv.log("", "rollback", "done: the old key is in force everywhere")
	return nil
}

func overrideSet(names []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, n := range names {
		known := false
		for _, k := range PrecheckNames {
			known = known || k == n
		}
		if !known {
			return nil, badInput("--override %q: the checks are %s", n, strings.Join(PrecheckNames, ", "))
		}
		out[n] = true
	}
	return out, nil
}

func okOr(err error) string {
	if err != nil {
		return "failed: " + err.Error()
	}
	return "ok"
}
