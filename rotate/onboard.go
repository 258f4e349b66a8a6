package rotate

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
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
	admin, err := recordToOnboard(admins, user, ident)
	if err != nil {
		return err
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
	admin.User, admin.Identity = user, ident
	ds, err := e.onboardDeliveries(ctx, admin, admins, clients, entry, cred, pw.Key, rep)
	if err != nil {
		return err
	}
	var derr error
	rep.Hosts, derr = e.engine().Deliver(ctx, ds)
	if e.DryRun {
		return derr
	}
	if delivered, err := e.recordClients(ctx, admin, clients, entry, rep.Hosts); err != nil || delivered == 0 {
		return errors.Join(derr, err)
	}
	if verify {
		rep.Logins = e.verifyDelivered(ctx, clients, user, entry, func(host string) bool {
			return clientDelivered(rep.Hosts, host, entryPaths(entry))
		})
		return errors.Join(derr, loginFailures(rep.Logins))
	}
	return derr
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
