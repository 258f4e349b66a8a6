package rotate

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/credfile"
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
}

// client is one client host of an onboarding, checked and connected.
type client struct {
	host    config.Host
	conn    distribute.Host
	account distribute.Account
}

// Onboard records the admin in the store and writes their client files. In
// per-user mode the admin gets a key of their own and every node's
// cib-credentials gains their line; in shared mode they get the shared key.
// Running it again for the same admin adds clients and rewrites the files.
func Onboard(ctx context.Context, e *Env, req OnboardRequest) (*Report, error) {
	// Bad input is refused before the lock is even taken.
	if _, _, err := e.clientPaths(req); err != nil {
		return &Report{Action: "onboard"}, err
	}
	if _, err := e.clientHosts(req); err != nil {
		return &Report{Action: "onboard"}, err
	}
	var rep *Report
	err := e.withLock(ctx, "onboard", func() (err error) {
		rep, err = onboard(ctx, e, req)
		return err
	})
	return rep, e.record(rep, append([]string{req.User}, req.Clients...), err)
}

func onboard(ctx context.Context, e *Env, req OnboardRequest) (*Report, error) {
	rep := &Report{Action: "onboard", DryRun: e.DryRun}
	keyPath, envPath, err := e.clientPaths(req)
	if err != nil {
		return rep, err
	}
	hosts, err := e.clientHosts(req)
	if err != nil {
		return rep, err
	}
	// Every client host must know the user before anything is written.
	clients, err := e.openClients(ctx, hosts, req.User)
	defer func() {
		for _, c := range clients {
			c.conn.Close()
		}
	}()
	if err != nil {
		return rep, err
	}
	pol := e.Config.Policy
	ident := pol.Identity(req.User)
	admin, err := e.Store.GetAdmin(ctx, req.User)
	if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return rep, err
	}
	if err == nil && admin.Identity != ident {
		return rep, fmt.Errorf("admin %s is recorded with identity %s, but identity_mode gives %s: revoke and onboard again", req.User, admin.Identity, ident)
	}
	var cred keystore.Credential
	var change CredentialChange
	if pol.IdentityMode == policies.PerUser {
		cred, change, err = e.ensureKey(ctx, keystore.CIB(ident), pol.PSKBytes, []string{req.User})
	} else {
		cred, err = e.Store.Get(ctx, keystore.CIB(ident))
		if errors.Is(err, keystore.ErrNotFound) || errors.Is(err, keystore.ErrDestroyed) {
			err = fmt.Errorf("the shared key is not in the store: run pcmkeys init first: %w", err)
		}
		change = CredentialChange{ID: cred.ID, Version: cred.Version.Version, Fingerprint: cred.Version.Fingerprint}
	}
	if err != nil {
		return rep, err
	}
	rep.Credentials = append(rep.Credentials, change)

	admin.User, admin.Identity, admin.Revoked = req.User, ident, time.Time{}
	if admin.Onboarded.IsZero() {
		admin.Onboarded = e.now()
	}
	for _, c := range clients {
		admin.Clients = setClient(admin.Clients, keystore.Client{Host: c.host.Name, KeyFile: keyPath, EnvFile: envPath})
	}
	if !e.DryRun {
		if _, err := e.Store.PutAdmin(ctx, admin); err != nil {
			return rep, fmt.Errorf("record admin %s: %w", req.User, err)
		}
	}

	var ds []delivery
	if pol.IdentityMode == policies.PerUser {
		entries, err := e.cibEntries(ctx, map[string]keys.Secret{ident: cred.Key})
		if err != nil {
			return rep, err
		}
		if ds, err = e.serverDeliveries(entries, nil, writeAlways); err != nil {
			return rep, err
		}
	}
	for _, c := range clients {
		d, env, err := e.clientDelivery(c, ident, cred.Key, keyPath, envPath)
		if err != nil {
			return rep, err
		}
		if rep.ClientEnv == nil {
			rep.ClientEnv = &env
		}
		ds = append(ds, d)
	}
	rep.Hosts, err = e.deliver(ctx, ds)
	return rep, err
}

// clientPaths returns the client key and env file paths.
func (e *Env) clientPaths(req OnboardRequest) (string, string, error) {
	files := e.Config.Policy.Files
	if req.KeyFile == "" {
		return files[policies.ClientKey].Path, files[policies.ClientEnv].Path, nil
	}
	fp := policies.FilePolicy{Path: req.KeyFile, Mode: files[policies.ClientKey].Mode}
	if err := fp.Validate(policies.ClientKey); err != nil {
		return "", "", badInput("--key-file: %v", err)
	}
	return req.KeyFile, req.KeyFile + ".env", nil
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

// clientDelivery builds the key and env files for one client host.
func (e *Env) clientDelivery(c client, ident string, key keys.Secret, keyPath, envPath string) (delivery, credfile.ClientEnv, error) {
	keyFile, err := credfile.RenderClientKey(key)
	if err != nil {
		return delivery{}, credfile.ClientEnv{}, err
	}
	env := e.clientEnv(ident, keyPath, c.account.Home)
	envFile, err := credfile.RenderClientEnv(env)
	if err != nil {
		return delivery{}, env, err
	}
	files := e.Config.Policy.Files
	d := delivery{host: c.host, conn: c.conn, files: []wanted{
		newWanted(distribute.File{Path: keyPath, Content: keyFile, Owner: c.account.Name, Mode: files[policies.ClientKey].Mode}, policies.ClientKey, key.Fingerprint(), 0, writeAlways),
		newWanted(distribute.File{Path: envPath, Content: envFile, Owner: c.account.Name, Mode: files[policies.ClientEnv].Mode}, policies.ClientEnv, "", 0, writeAlways),
	}}
	return d, env, nil
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
