package rotate

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// serverFile returns the distribute.File for a server file of kind k.
func (e *Env) serverFile(k policies.FileKind, content []byte) distribute.File {
	fp := e.Config.Policy.Files[k]
	return distribute.File{Path: fp.Path, Content: content, Owner: fp.Owner, Group: fp.Group, Mode: fp.Mode}
}

// cibEntries returns the lines the server cib-credentials file should hold:
// the shared identity's key, or in per-user mode every active admin's key.
// extra adds or replaces identities whose new keys are not in the store
// yet. In per-user mode it lists the admins; callers that hold the list
// use cibEntriesFor.
func (e *Env) cibEntries(ctx context.Context, extra map[string]keys.Secret) ([]credfile.Entry, error) {
	var admins []keystore.Admin
	if e.Config.Policy.IdentityMode == policies.PerUser {
		var err error
		if admins, err = e.Store.ListAdmins(ctx); err != nil {
			return nil, fmt.Errorf("list admins: %w", err)
		}
	}
	entries, _, err := e.cibEntriesFor(ctx, admins, extra)
	return entries, err
}

// cibEntriesFor is cibEntries over a list of admins already read. It also
// returns the credentials it read from the store, by ID.
func (e *Env) cibEntriesFor(ctx context.Context, admins []keystore.Admin, extra map[string]keys.Secret) ([]credfile.Entry, map[keystore.ID]keystore.Credential, error) {
	want := map[string]keys.Secret{}
	if e.Config.Policy.IdentityMode == policies.Shared {
		want[policies.SharedIdentity] = nil
	} else {
		for _, a := range admins {
			if a.Active() {
				want[a.Identity] = nil
			}
		}
	}
	for ident, k := range extra {
		want[ident] = k
	}
	read := map[keystore.ID]keystore.Credential{}
	var entries []credfile.Entry
	for ident, k := range want {
		if k == nil {
			cred, err := e.Store.Get(ctx, keystore.CIB(ident))
			if err != nil {
				return nil, nil, fmt.Errorf("key of identity %s: %w", ident, err)
			}
			read[cred.ID] = cred
			k = cred.Key
		}
		entries = append(entries, credfile.Entry{Identity: ident, Key: k})
	}
	return entries, read, nil
}

// serverDeliveries returns, for every node and remote node, the server
// files it should hold: cib-credentials on nodes, the authkey on both.
func (e *Env) serverDeliveries(cib []credfile.Entry, authkey keys.Secret, mode deliveryMode) ([]delivery, error) {
	var cibFile, authFile []byte
	var err error
	if cib != nil {
		if cibFile, err = credfile.RenderCIBCredentials(cib); err != nil {
			return nil, err
		}
	}
	if authkey != nil {
		if authFile, err = credfile.RenderAuthkey(authkey); err != nil {
			return nil, err
		}
	}
	var out []delivery
	for _, h := range e.Config.Hosts {
		var files []wanted
		if h.Role == config.RoleNode && cib != nil {
			fp := ""
			if len(cib) == 1 {
				fp = cib[0].Key.Fingerprint()
			}
			files = append(files, newWanted(e.serverFile(policies.CIBCredentials, cibFile), policies.CIBCredentials, fp, len(cib), mode))
		}
		if (h.Role == config.RoleNode || h.Role == config.RoleRemoteNode) && authkey != nil {
			files = append(files, newWanted(e.serverFile(policies.Authkey, authFile), policies.Authkey, authkey.Fingerprint(), 0, mode))
		}
		if len(files) > 0 {
			out = append(out, delivery{host: h, files: files})
		}
	}
	return out, nil
}

// ensureKey returns the current version of id, creating it with a new key
// if the store has none (or only destroyed versions). In a dry run the new
// key is not stored and its change has no fingerprint.
func (e *Env) ensureKey(ctx context.Context, id keystore.ID, size int, holders []string) (keystore.Credential, CredentialChange, error) {
	cred, err := e.Store.Get(ctx, id)
	if err == nil {
		return cred, CredentialChange{ID: id, Version: cred.Version.Version, Fingerprint: cred.Version.Fingerprint}, nil
	}
	cas := 0
	switch {
	case errors.Is(err, keystore.ErrDestroyed):
		cas = cred.Version.Version
	case !errors.Is(err, keystore.ErrNotFound):
		return cred, CredentialChange{}, err
	}
	key, err := e.generate(id.Kind(), size)
	if err != nil {
		return cred, CredentialChange{}, err
	}
	if e.DryRun {
		return keystore.Credential{ID: id, Key: key, Version: keystore.Version{Version: cas + 1}},
			CredentialChange{ID: id, Version: cas + 1, Created: true}, nil
	}
	v, err := e.Store.Put(ctx, id, key, keystore.PutOptions{CAS: cas, CreatedBy: e.Operator, Holders: holders})
	if err != nil {
		return cred, CredentialChange{}, fmt.Errorf("store new %s: %w", id, err)
	}
	e.log().Info("created key", "credential", id, "version", v.Version, "fingerprint", v.Fingerprint)
	return keystore.Credential{ID: id, Key: key, Version: v}, CredentialChange{ID: id, Version: v.Version, Fingerprint: v.Fingerprint, Created: true}, nil
}

// clientWanted returns the files of admin a on one client: the key, the
// password when pw is set (hacluster's, shared mode), and the env file,
// rendered on the host, where the admin's home is known.
func (e *Env) clientWanted(a keystore.Admin, c keystore.Client, key, pw keys.Secret, mode deliveryMode) ([]wanted, error) {
	keyFile, err := credfile.RenderClientKey(key)
	if err != nil {
		return nil, err
	}
	files := e.Config.Policy.Files
	out := []wanted{newWanted(distribute.File{Path: c.KeyFile, Content: keyFile, Owner: a.User, Mode: files[policies.ClientKey].Mode}, policies.ClientKey, key.Fingerprint(), 0, mode)}
	pwPath := ""
	if pw != nil {
		pwPath = e.passwordPath(c)
		content := append(pw.PasswordText(), '\n')
		out = append(out, newWanted(distribute.File{Path: pwPath, Content: content, Owner: a.User, Mode: files[policies.ClientPassword].Mode}, policies.ClientPassword, pw.Fingerprint(), 0, mode))
	}
	ew := newWanted(distribute.File{Path: c.EnvFile, Owner: a.User, Mode: files[policies.ClientEnv].Mode}, policies.ClientEnv, "", 0, mode)
	ew.render = func(ctx context.Context, h distribute.Host) (distribute.File, error) {
		acct, err := h.LookupUser(ctx, a.User)
		if err != nil {
			return distribute.File{}, err
		}
		content, err := credfile.RenderClientEnv(e.clientEnv(a.Identity, c.KeyFile, pwPath, acct.Home))
		f := ew.file
		f.Content = content
		return f, err
	}
	return append(out, ew), nil
}

// clientEnv is the environment of an admin with identity ident whose key
// file is keyPath (and password file pwPath, if any) on a host where their
// home is home.
func (e *Env) clientEnv(ident, keyPath, pwPath, home string) credfile.ClientEnv {
	env := credfile.ClientEnv{Server: e.Config.CIB.Server, Port: e.Config.CIB.Port, User: ident, KeyFile: expandHome(keyPath, home)}
	if pwPath != "" {
		env.PasswordFile = expandHome(pwPath, home)
	}
	return env
}

// holdersOf names the active admins who receive the key of id.
func holdersOf(admins []keystore.Admin, id keystore.ID) []string {
	ident := id.Identity()
	if ident == "" {
		return nil
	}
	var out []string
	for _, a := range admins {
		if a.Active() && a.Identity == ident {
			out = append(out, a.User)
		}
	}
	return out
}
