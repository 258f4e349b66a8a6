package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
	"github.com/pcmkeys/pcmkeys/rotate"
)

// Tab completion (pcmkeys completion bash|zsh|fish|powershell) offers what
// an argument names, never file names where a name is wanted:
//
//   - hosts (--host, --client, a HOST or NAME argument): the config's hosts,
//     described by role;
//   - admins (--admin, --user, a USER argument): the store's admin records
//     whose revocation has not finished, read with a short timeout;
//   - roles (--role): the host roles, and any role the config's hosts have;
//   - identities (--identity): the PSK identities in use (shared mode:
//     hacluster);
//   - --output: text, json; --override: the rotation's prechecks.
//
// Completion only reads: the config file, and the store's admin records.
// On any error it offers nothing, and it never prompts. A Vault store is
// asked only with a token (token auth): an AppRole or userpass login would
// mint a token, and could use up a secret ID with num_uses, on each Tab.

// completeTimeout bounds the store's part of one completion.
const completeTimeout = 2 * time.Second

// completion kinds, by the flag name or argument placeholder they serve.
var (
	hostWords     = []string{"host", "hosts", "client", "clients", "node", "nodes", "limit", "HOST", "NAME", "NODE", "CLIENT"}
	adminWords    = []string{"admin", "admins", "user", "users", "USER", "ADMIN"}
	roleWords     = []string{"role", "roles", "ROLE"}
	identityWords = []string{"identity", "identities", "IDENTITY"}
)

// registerCompletions walks the command tree and registers completion for
// every flag and positional argument it knows by name. A registration a
// command made itself (policy vault --role) is kept.
func registerCompletions(g *globals, root *cobra.Command) {
	c := &completer{g: g}
	walk(root, func(cmd *cobra.Command) {
		cmd.Flags().VisitAll(func(f *pflag.Flag) { c.registerFlag(cmd, f.Name, f.Value.Type()) })
		cmd.PersistentFlags().VisitAll(func(f *pflag.Flag) { c.registerFlag(cmd, f.Name, f.Value.Type()) })
		if cmd.ValidArgsFunction == nil && len(cmd.ValidArgs) == 0 {
			cmd.ValidArgsFunction = c.positional(cmd.Use)
		}
	})
}

type completer struct{ g *globals }

func (c *completer) registerFlag(cmd *cobra.Command, name, typ string) {
	if typ == "bool" {
		return
	}
	if _, ok := cmd.GetFlagCompletionFunc(name); ok {
		return
	}
	var fn cobra.CompletionFunc
	switch {
	case slices.Contains(hostWords, name):
		fn = c.list(c.hosts)
	case slices.Contains(adminWords, name):
		fn = c.list(c.admins)
	case slices.Contains(roleWords, name):
		fn = c.list(c.roles)
	case slices.Contains(identityWords, name):
		fn = c.list(c.identities)
	case name == "output":
		fn = fixed("text\thuman-readable", "json\tone JSON document")
	case name == "override":
		fn = fixed(rotate.PrecheckNames...)
	case name == "config":
		fn = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		}
	case isPathFlag(name):
		return // files are what it takes: the shell's own completion
	default:
		fn = fixed() // a number, a duration, a name pcmkeys cannot know
	}
	_ = cmd.RegisterFlagCompletionFunc(name, fn)
}

// isPathFlag reports whether a flag takes a file or directory.
func isPathFlag(name string) bool {
	for _, s := range []string{"file", "path", "dir", "out"} {
		if name == s || strings.HasSuffix(name, "-"+s) {
			return true
		}
	}
	return false
}

// positional completes the arguments a command's Use line names: the first
// placeholder that is not a flag's value (USER in "revoke USER...", none in
// "push [--host NAME...]"). A variadic one is offered again without the
// values already given.
func (c *completer) positional(use string) cobra.CompletionFunc {
	word, variadic := firstArg(use)
	var source func() []string
	switch {
	case slices.Contains(hostWords, word):
		source = c.hosts
	case slices.Contains(adminWords, word):
		source = c.admins
	case slices.Contains(roleWords, word):
		source = c.roles
	case slices.Contains(identityWords, word):
		source = c.identities
	}
	return func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if source == nil || (len(args) > 0 && !variadic) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, s := range filter(source(), toComplete) {
			if !slices.Contains(args, value(s)) {
				out = append(out, s)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// firstArg returns the first positional placeholder of a Use line, without
// brackets and dots, and whether it repeats.
func firstArg(use string) (string, bool) {
	fields := strings.Fields(use)
	afterFlag := false
	for _, f := range fields[min(1, len(fields)):] {
		bare := strings.TrimLeft(f, "[")
		if strings.HasPrefix(bare, "-") {
			afterFlag = !strings.Contains(f, "=") && !strings.HasSuffix(f, "]")
			continue
		}
		if afterFlag {
			afterFlag = false
			continue
		}
		word := strings.TrimRight(bare, "]")
		variadic := strings.HasSuffix(word, "...")
		return strings.TrimSuffix(word, "..."), variadic
	}
	return "", false
}

func (c *completer) list(source func() []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return filter(source(), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

func fixed(choices ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return filter(choices, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// filter keeps the choices ("value" or "value\tdescription") that start
// with prefix.
func filter(choices []string, prefix string) []string {
	var out []string
	for _, s := range choices {
		if strings.HasPrefix(value(s), prefix) {
			out = append(out, s)
		}
	}
	return out
}

func value(choice string) string {
	v, _, _ := strings.Cut(choice, "\t")
	return v
}

// config loads the config the command line names, or nil.
func (c *completer) config() *config.Config {
	cfg, err := config.Load(config.Find(c.g.configPath))
	if err != nil {
		return nil
	}
	return cfg
}

func (c *completer) hosts() []string {
	cfg := c.config()
	if cfg == nil {
		return nil
	}
	out := make([]string, 0, len(cfg.Hosts))
	for _, h := range cfg.Hosts {
		out = append(out, h.Name+"\t"+strings.ReplaceAll(string(h.Role), "_", " "))
	}
	return out
}

func (c *completer) roles() []string {
	out := []string{string(config.RoleNode), string(config.RoleRemoteNode), string(config.RoleClient)}
	if cfg := c.config(); cfg != nil {
		for _, h := range cfg.Hosts {
			if !slices.Contains(out, string(h.Role)) {
				out = append(out, string(h.Role))
			}
		}
	}
	return out
}

func (c *completer) admins() []string {
	cfg := c.config()
	if cfg == nil {
		return nil
	}
	var out []string
	for _, a := range storeAdmins(cfg) {
		desc := "revocation unfinished"
		if a.Active() {
			desc = "identity " + a.Identity
			if hosts := clientHosts(a); len(hosts) > 0 {
				desc += ", on " + strings.Join(hosts, ", ")
			}
		}
		out = append(out, a.User+"\t"+desc)
	}
	return out
}

func (c *completer) identities() []string {
	cfg := c.config()
	if cfg == nil {
		return nil
	}
	var out []string
	if cfg.Policy.IdentityMode != policies.PerUser {
		out = append(out, policies.SharedIdentity+"\tshared by every admin")
	}
	for _, a := range storeAdmins(cfg) {
		if a.Active() && !slices.ContainsFunc(out, func(s string) bool { return value(s) == a.Identity }) {
			out = append(out, a.Identity+"\tadmin "+a.User)
		}
	}
	return out
}

// storeAdmins reads the admin records whose revocation has not finished,
// or returns nil: the store is opened without creating anything, and a
// Vault store only with a token.
func storeAdmins(cfg *config.Config) []keystore.Admin {
	if cfg.Store.Type == "vault" && cfg.Store.Auth.Method != "" && cfg.Store.Auth.Method != "token" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
	defer cancel()
	store, err := rotate.OpenStore(ctx, cfg, false)
	if err != nil {
		return nil
	}
	defer store.Close()
	admins, err := store.ListAdmins(ctx)
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(admins, keystore.Admin.RevocationFinished)
}

func clientHosts(a keystore.Admin) []string {
	var out []string
	for _, cl := range a.Clients {
		if !slices.Contains(out, cl.Host) {
			out = append(out, cl.Host)
		}
	}
	return out
}
