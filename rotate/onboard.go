package rotate

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// OnboardRequest asks to give an admin access.
type OnboardRequest struct {
	User    string
	Clients []string
	// KeyFile overrides the client key path (policy files.client_key); the
	// env file is then KeyFile + ".env".
	KeyFile string
	// Verify runs the real client as the admin on each client host, with
	// nothing but their env file, and reports whether the login works.
	Verify bool
}

// client is one client host of an onboarding, checked and connected.
type client struct {
	host    config.Host
	conn    distribute.Host
	account distribute.Account
}

// Onboard gives an admin access, in one shape: validate (names, paths,
// hosts: bad input, exit 2, before the lock), lock, plan (every client
// host reached, the user known there, every target path free or already
// theirs), act (deliver the files; in per-user mode every node's
// cib-credentials gains their line), and only then record, in the store,
// the client hosts whose files were delivered. A client whose key-file
// path changed loses its old files. Running it again for the same admin
// adds clients and rewrites the files.
func Onboard(ctx context.Context, e *Env, req OnboardRequest) (*Report, error) {
	var keyPath, envPath string
	var hosts []config.Host
	return e.run(ctx, workflow{
		action: "onboard", args: append([]string{req.User}, req.Clients...),
		validate: func() (err error) {
			if keyPath, envPath, err = e.clientPaths(req); err != nil {
				return err
			}
			hosts, err = e.clientHosts(req)
			return err
		},
		act: func(ctx context.Context, rep *Report) error {
			return e.onboard(ctx, req.User, hosts, keyPath, envPath, req.Verify, rep)
		},
	})
}

func (e *Env) onboard(ctx context.Context, user string, hosts []config.Host, keyPath, envPath string, verify bool, rep *Report) error {
	pol := e.Config.Policy
	ident := pol.Identity(user)
	admins, err := e.Store.ListAdmins(ctx)
	if err != nil {
		return fmt.Errorf("list admins: %w", err)
	}
	admin, known := findAdmin(admins, user)
	switch {
	case known && admin.RevocationFinished():
		admin = keystore.Admin{Revision: admin.Revision} // a new start
	case known && !admin.Active():
		return badInput("the revocation of %s is not finished: run pcmkeys revoke %s until it exits 0, then onboard again", user, user)
	case known && admin.Identity != ident:
		return fmt.Errorf("admin %s is recorded with identity %s, but identity_mode gives %s: revoke and onboard again", user, admin.Identity, ident)
	}
	// The key they will hold, if it exists yet.
	cred, err := e.Store.Get(ctx, keystore.CIB(ident))
	haveKey := err == nil
	switch {
	case haveKey:
	case pol.IdentityMode == policies.Shared:
		return fmt.Errorf("the shared key is not in the store: run pcmkeys init first: %w", err)
	case !errors.Is(err, keystore.ErrNotFound) && !errors.Is(err, keystore.ErrDestroyed):
		return err
	}

	pw, err := e.currentPassword(ctx)
	if err != nil {
		return err
	}
	if e.managesPassword() && pw.Key == nil {
		return fmt.Errorf("hacluster's password is not in the store yet: run pcmkeys init, which creates it and sets it on every node (or set cib.password: unmanaged)")
	}
	entry := keystore.Client{KeyFile: keyPath, EnvFile: envPath}
	if pw.Key != nil {
		entry.PasswordFile = e.derivedPasswordPath(keyPath)
	}

	// Plan: every client host must know the user, and every target path
	// must be free or already theirs, before anything is written.
	clients, err := e.openClients(ctx, hosts, user)
	defer func() {
		for _, c := range clients {
			c.conn.Close()
		}
	}()
	if err != nil {
		return err
	}
	for _, c := range clients {
		if err := e.checkClientTargets(ctx, c, admin, admins, entry, cred.Key, pw.Key, ident); err != nil {
			return err
		}
	}

	// Act.
	change := CredentialChange{ID: cred.ID, Version: cred.Version.Version, Fingerprint: cred.Version.Fingerprint}
	if !haveKey { // per-user: their first key
		if cred, change, err = e.ensureKey(ctx, keystore.CIB(ident), []string{user}); err != nil {
			return err
		}
	}
	rep.Credentials = append(rep.Credentials, change)
	if pw.Key != nil {
		rep.Credentials = append(rep.Credentials, CredentialChange{ID: pw.ID, Version: pw.Version.Version, Fingerprint: pw.Version.Fingerprint})
	}
	var ds []deliver.Host
	if pol.IdentityMode == policies.PerUser {
		others := activeExcept(admins, user)
		entries, _, err := e.cibEntriesFor(ctx, others, map[keystore.ID]keys.Secret{cred.ID: cred.Key})
		if err != nil {
			return err
		}
		if ds, err = e.serverDeliveries(entries, nil, deliver.WriteIfDrift); err != nil {
			return err
		}
	}
	admin.User, admin.Identity = user, ident
	for _, c := range clients {
		entry.Host = c.host.Name
		// A rerun writes nothing that is in sync.
		ws, err := e.clientWanted(admin, entry, cred.Key, pw.Key, deliver.WriteIfDrift)
		if err != nil {
			return err
		}
		env := e.clientEnv(ident, entry.KeyFile, entry.PasswordFile, c.account.Home)
		if old, ok := recordedClient(admin, c.host.Name); ok {
			// A changed path: the old files go.
			for _, w := range e.removalWanted(admin, old) {
				if !slices.Contains(entryPaths(entry), w.File.Path) {
					ws = append(ws, w)
				}
			}
		}
		if rep.ClientEnv == nil {
			rep.ClientEnv = &env
		}
		ds = append(ds, deliver.Host{Host: c.host, Conn: c.conn, Files: ws, Homes: map[string]string{user: c.account.Home}})
	}
	var derr error
	rep.Hosts, derr = e.engine().Deliver(ctx, ds)
	if e.DryRun {
		return derr
	}

	// Record the clients whose files were delivered (a record that would
	// not change is not written again).
	before := fmt.Sprint(admin)
	delivered := 0
	for _, c := range clients {
		if clientDelivered(rep.Hosts, c.host.Name, entryPaths(entry)) {
			entry.Host = c.host.Name
			admin.Clients = setClient(admin.Clients, entry)
			delivered++
		}
	}
	if delivered == 0 {
		return derr
	}
	if admin.Onboarded.IsZero() {
		admin.Onboarded = e.now()
	}
	if fmt.Sprint(admin) != before {
		if _, err := e.Store.PutAdmin(ctx, admin); err != nil {
			return errors.Join(derr, fmt.Errorf("record admin %s: %w", user, err))
		}
	}
	if verify {
		rep.Logins = e.verifyDelivered(ctx, clients, user, entry, func(host string) bool {
			return clientDelivered(rep.Hosts, host, entryPaths(entry))
		})
		return errors.Join(derr, loginFailures(rep.Logins))
	}
	return derr
}

// entryPaths lists a client entry's files.
func entryPaths(c keystore.Client) []string {
	out := []string{c.KeyFile, c.EnvFile}
	if c.PasswordFile != "" {
		out = append(out, c.PasswordFile)
	}
	return out
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

// clientPaths returns the client key and env file paths: the policy's, or
// those of --key-file, checked against the client path rules.
func (e *Env) clientPaths(req OnboardRequest) (string, string, error) {
	files := e.Config.Policy.Files
	if req.KeyFile == "" {
		return files[policies.ClientKey].Path, files[policies.ClientEnv].Path, nil
	}
	dirs := append([]string(nil), e.Config.Policy.ClientDirs...)
	if p := files[policies.ClientKey].Path; strings.HasPrefix(p, "/") {
		dirs = append(dirs, path.Dir(p)) // the config names it: allowed
	}
	if err := policies.CheckClientKeyPath(req.KeyFile, dirs); err != nil {
		return "", "", badInput("--key-file: %v", err)
	}
	envPath := req.KeyFile + policies.EnvSuffix
	for _, p := range []string{req.KeyFile, envPath} {
		if e.isServerPath(p) {
			return "", "", badInput("--key-file: %s is the path of a server file", p)
		}
	}
	return req.KeyFile, envPath, nil
}

// clientHosts checks the user name and resolves the client host names.
func (e *Env) clientHosts(req OnboardRequest) ([]config.Host, error) {
	if err := policies.ValidateUser(req.User); err != nil {
		return nil, badInput("%v", err)
	}
	if len(req.Clients) == 0 {
		return nil, badInput("name at least one client host with --client")
	}
	var hosts []config.Host
	seen := map[string]bool{}
	for _, name := range req.Clients {
		if seen[name] {
			continue
		}
		seen[name] = true
		h, ok := e.Config.Host(name)
		if !ok {
			return nil, badInput("unknown host %q: add it to the config (clients, nodes or remote_nodes); known hosts: %s", name, e.hostNames())
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// selectHosts returns the config's hosts named (every host when none is
// named); a name the config does not list is bad input.
func (e *Env) selectHosts(names []string) ([]config.Host, error) {
	if len(names) == 0 {
		return e.Config.Hosts, nil
	}
	var out []config.Host
	for _, n := range names {
		h, ok := e.Config.Host(n)
		if !ok {
			return nil, badInput("unknown host %q; known hosts: %s", n, e.hostNames())
		}
		out = append(out, h)
	}
	return out, nil
}

func (e *Env) hostNames() string {
	names := make([]string, 0, len(e.Config.Hosts))
	for _, h := range e.Config.Hosts {
		names = append(names, h.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// openClients connects to every client host and looks the user up there.
func (e *Env) openClients(ctx context.Context, hosts []config.Host, user string) ([]client, error) {
	clients := make([]client, len(hosts))
	errs := distribute.Each(ctx, hosts, e.Parallel, func(ctx context.Context, h config.Host) error {
		i := indexOf(hosts, h.Name)
		conn, err := e.connect(ctx, h)
		if err != nil {
			return fmt.Errorf("client host %s: %w", h.Name, err)
		}
		clients[i] = client{host: h, conn: conn}
		acct, err := conn.LookupUser(ctx, user)
		if errors.Is(err, distribute.ErrUnknownUser) {
			return badInput("user %s does not exist on client host %s", user, h.Name)
		}
		if err != nil {
			return fmt.Errorf("client host %s: %w", h.Name, err)
		}
		clients[i].account = acct
		return nil
	})
	var open []client
	for _, c := range clients {
		if c.conn != nil {
			open = append(open, c)
		}
	}
	return open, errors.Join(errs...)
}

func indexOf(hosts []config.Host, name string) int {
	for i, h := range hosts {
		if h.Name == name {
			return i
		}
	}
	return -1
}

func expandHome(p, home string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return path.Join(home, rest)
	}
	return p
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
