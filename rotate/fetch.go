package rotate

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// FetchRequest asks for an admin's own files on the machine pcmkeys runs on.
type FetchRequest struct {
	// User is the admin: the OS user running pcmkeys.
	User string
	// KeyFile overrides the client key path, as onboard --key-file does.
	KeyFile string
}

// Fetch is self-service: an admin, on their own machine, as themselves,
// with a Vault token that holds only the "self" policy (pcmkeys policy
// vault --role self --user USER), reads their own record, their key and
// (shared mode, managed) hacluster's password, and writes their key,
// password and env files in their home with the same write protocol as
// every delivery. Nothing in the store changes, so no lock is taken; a
// rerun changes nothing that is in sync. Anything the token may not read
// is refused with Vault's permission error naming the path.
func Fetch(ctx context.Context, e *Env, req FetchRequest) (*Report, error) {
	rep := &Report{Action: "fetch", DryRun: e.DryRun}
	if err := policies.ValidateUser(req.User); err != nil {
		return rep, badInput("%v", err)
	}
	keyPath, envPath, err := e.clientPaths(OnboardRequest{User: req.User, KeyFile: req.KeyFile})
	if err != nil {
		return rep, err
	}
	admin, err := e.Store.GetAdmin(ctx, req.User)
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		return rep, badInput("%s is not an admin of cluster %s: ask an operator to run pcmkeys onboard %s", req.User, e.Config.Cluster, req.User)
	case err != nil:
		return rep, err
	case !admin.Active():
		return rep, badInput("the access of %s to cluster %s was revoked", req.User, e.Config.Cluster)
	}
	cred, err := e.Store.Get(ctx, keystore.CIB(admin.Identity))
	if err != nil {
		return rep, fmt.Errorf("your key: %w", err)
	}
	rep.Credentials = append(rep.Credentials, CredentialChange{ID: cred.ID, Version: cred.Version.Version, Fingerprint: cred.Version.Fingerprint})
	pw, err := e.currentPassword(ctx)
	if err != nil {
		return rep, err
	}
	entry := keystore.Client{Host: "localhost", KeyFile: keyPath, EnvFile: envPath}
	if pw.Key != nil {
		entry.PasswordFile = e.derivedPasswordPath(keyPath)
		rep.Credentials = append(rep.Credentials, CredentialChange{ID: pw.ID, Version: pw.Version.Version, Fingerprint: pw.Version.Fingerprint})
	}
	conn, err := distribute.NewLocal("localhost", "/")
	if err != nil {
		return rep, err
	}
	defer conn.Close()
	acct, err := conn.LookupUser(ctx, req.User)
	if err != nil {
		return rep, err
	}
	ws, err := e.clientWanted(admin, entry, cred.Key, pw.Key, deliver.WriteIfDrift)
	if err != nil {
		return rep, err
	}
	env := e.clientEnv(admin.Identity, entry.KeyFile, entry.PasswordFile, acct.Home)
	rep.ClientEnv = &env
	rep.Hosts, err = e.engine().Deliver(ctx, []deliver.Host{{
		Host: config.Host{Name: "localhost", Local: true}, Conn: conn, Files: ws,
		Homes: map[string]string{req.User: acct.Home},
	}})
	return rep, err
}
