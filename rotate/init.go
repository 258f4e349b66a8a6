package rotate

import (
	"context"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

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
	return e.run(ctx, workflow{action: "init", act: e.init})
}

func (e *Env) init(ctx context.Context, rep *Report) error {
	pol := e.Config.Policy
	auth, change, err := e.ensureKey(ctx, keystore.AuthkeyID, nil)
	if err != nil {
		return err
	}
	rep.Credentials = append(rep.Credentials, change)
	fresh := map[keystore.ID]keys.Secret{}
	if pol.IdentityMode == policies.Shared {
		cib, change, err := e.ensureKey(ctx, keystore.CIB(policies.SharedIdentity), nil)
		if err != nil {
			return err
		}
		rep.Credentials = append(rep.Credentials, change)
		fresh[cib.ID] = cib.Key
	}
	entries, err := e.cibEntries(ctx, fresh)
	if err != nil {
		return err
	}
	ds, err := e.serverDeliveries(entries, auth.Key, deliver.KeepExisting)
	if err != nil {
		return err
	}
	if e.managesPassword() {
		pw, change, err := e.ensureKey(ctx, sharedPasswordID, nil)
		if err != nil {
			return err
		}
		rep.Credentials = append(rep.Credentials, change)
		ds = e.withNodePassword(ds, pw.Key, deliver.KeepExisting)
	}
	rep.Hosts, err = e.engine().Deliver(ctx, ds)
	return err
}
