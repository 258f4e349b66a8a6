package rotate

import (
	"context"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// Init creates the cluster's first keys where the store has none — the
// authkey, and in shared mode the "hacluster" PSK and (cib.password:
// managed) hacluster's password — and writes the server files to every
// node that lacks them, and sets hacluster's password on every node where
// pcmkeys has not set one yet. A server file that already exists
// with other content is left alone and reported: adopting it is import's
// job, replacing it push's.
func Init(ctx context.Context, e *Env) (*Report, error) {
	rep := &Report{Action: "init", DryRun: e.DryRun}
	err := e.withLock(ctx, "init", func() error { return e.init(ctx, rep) })
	return rep, e.record(rep, nil, err)
}

func (e *Env) init(ctx context.Context, rep *Report) error {
	pol := e.Config.Policy
	auth, change, err := e.ensureKey(ctx, keystore.AuthkeyID, pol.AuthkeyBytes, nil)
	if err != nil {
		return err
	}
	rep.Credentials = append(rep.Credentials, change)
	extra := map[string]keys.Secret{}
	if pol.IdentityMode == policies.Shared {
		cib, change, err := e.ensureKey(ctx, keystore.CIB(policies.SharedIdentity), pol.PSKBytes, nil)
		if err != nil {
			return err
		}
		rep.Credentials = append(rep.Credentials, change)
		extra[policies.SharedIdentity] = cib.Key
	}
	entries, err := e.cibEntries(ctx, extra)
	if err != nil {
		return err
	}
	ds, err := e.serverDeliveries(entries, auth.Key, keepExisting)
	if err != nil {
		return err
	}
	if e.managesPassword() {
		pw, change, err := e.ensureKey(ctx, sharedPasswordID, keys.DefaultPasswordBytes, nil)
		if err != nil {
			return err
		}
		rep.Credentials = append(rep.Credentials, change)
		ds = e.withNodePassword(ds, pw.Key, keepExisting)
	}
	rep.Hosts, err = e.deliver(ctx, ds)
	return err
}
