package rotate

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

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
// fresh adds or replaces CIB keys that are not in the store yet (other
// credentials in it are ignored). In per-user mode it lists the admins;
// callers that hold the list use cibEntriesFor.
func (e *Env) cibEntries(ctx context.Context, fresh map[keystore.ID]keys.Secret) ([]credfile.Entry, error) {
	var admins []keystore.Admin
	if e.Config.Policy.IdentityMode == policies.PerUser {
		var err error
		if admins, err = e.Store.ListAdmins(ctx); err != nil {
			return nil, fmt.Errorf("list admins: %w", err)
		}
	}
	entries, _, err := e.cibEntriesFor(ctx, admins, fresh)
	return entries, err
}

// cibEntriesFor is cibEntries over a list of admins already read. It also
// returns the credentials it read from the store, by ID.
func (e *Env) cibEntriesFor(ctx context.Context, admins []keystore.Admin, fresh map[keystore.ID]keys.Secret) ([]credfile.Entry, map[keystore.ID]keystore.Credential, error) {
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
	for id, k := range fresh {
		if ident := id.Identity(); ident != "" {
			want[ident] = k
		}
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
func (e *Env) serverDeliveries(cib []credfile.Entry, authkey keys.Secret, mode deliver.Mode) ([]deliver.Host, error) {
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
	var out []deliver.Host
	for _, h := range e.Config.Hosts {
		var files []deliver.Want
		if h.Role.Holds(policies.CIBCredentials) && cib != nil {
			fp := ""
			if len(cib) == 1 {
				fp = cib[0].Key.Fingerprint()
			}
			files = append(files, deliver.NewWant(e.serverFile(policies.CIBCredentials, cibFile), policies.CIBCredentials, fp, len(cib), mode))
		}
		if h.Role.Holds(policies.Authkey) && authkey != nil {
			files = append(files, deliver.NewWant(e.serverFile(policies.Authkey, authFile), policies.Authkey, authkey.Fingerprint(), 0, mode))
		}
		if len(files) > 0 {
			out = append(out, deliver.Host{Host: h, Files: files})
		}
	}
	return out, nil
}

// ensureKey returns the current version of id, creating it with a new key
// if the store has none (or only destroyed versions). In a dry run the new
// key is not stored and its change has no fingerprint.
func (e *Env) ensureKey(ctx context.Context, id keystore.ID, holders []string) (keystore.Credential, CredentialChange, error) {
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
	key, err := e.generate(id.Kind())
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
func (e *Env) clientWanted(a keystore.Admin, c keystore.Client, key, pw keys.Secret, mode deliver.Mode) ([]deliver.Want, error) {
	keyFile, err := credfile.RenderClientKey(key)
	if err != nil {
		return nil, err
	}
	files := e.Config.Policy.Files
	out := []deliver.Want{deliver.NewWant(distribute.File{Path: c.KeyFile, Content: keyFile, Owner: a.User, Mode: files[policies.ClientKey].Mode}, policies.ClientKey, key.Fingerprint(), 0, mode)}
	pwPath := ""
	if pw != nil {
		pwPath = e.passwordPath(c)
		content := append(pw.PasswordText(), '\n')
		out = append(out, deliver.NewWant(distribute.File{Path: pwPath, Content: content, Owner: a.User, Mode: files[policies.ClientPassword].Mode}, policies.ClientPassword, pw.Fingerprint(), 0, mode))
	}
	ew := deliver.NewWant(distribute.File{Path: c.EnvFile, Owner: a.User, Mode: files[policies.ClientEnv].Mode}, policies.ClientEnv, "", 0, mode)
	ew.Render = func(home string) ([]byte, error) {
		return credfile.RenderClientEnv(e.clientEnv(a.Identity, c.KeyFile, pwPath, home))
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

// desired returns what every host should hold according to the store:
// server files on nodes and remote nodes, each active admin's client files,
// and the removal of the client files of admins whose revocation has not
// finished. With hosts given, only those hosts. It also returns every
// credential it read, so that status need not read them again: one read
// per admin record and one per key in all.
func (e *Env) desired(ctx context.Context, mode deliver.Mode, hosts []string) ([]deliver.Host, map[keystore.ID]keystore.Credential, error) {
	only := map[string]bool{}
	selected, err := e.selectHosts(hosts)
	if err != nil {
		return nil, nil, err
	}
	for _, h := range selected {
		if len(hosts) > 0 {
			only[h.Name] = true
		}
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
			var ws []deliver.Want
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
				ds = append(ds, deliver.Host{Host: config.Host{Name: c.Host}, Files: ws, Orphan: true})
				continue
			}
			ds = append(ds, deliver.Host{Host: h, Files: ws})
		}
	}
	ds = deliver.Merge(ds)
	if len(only) == 0 {
		return ds, creds, nil
	}
	var out []deliver.Host
	for _, d := range ds {
		if only[d.Host.Name] {
			out = append(out, d)
		}
	}
	return out, creds, nil
}
