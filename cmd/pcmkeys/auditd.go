package main

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/rotate"
)

// auditdKey is the key every rule carries: ausearch -k pcmkeys.
const auditdKey = "pcmkeys"

// Limits of auditctl's rules files (audit-userspace, src/auditctl.c): a
// line is read into 6144 bytes, a watch's path is shorter than PATH_MAX
// and its last part at most NAME_MAX.
const (
	auditctlLineMax = 6144 - 1
	auditctlPathMax = 4096 - 1
	auditctlNameMax = 255
)

func newAuditRulesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rules",
		Short: "auditd rules that watch every file pcmkeys manages",
		Long: `Print auditd watch rules (-w PATH -p wa -k pcmkeys) for every file pcmkeys
manages on this cluster, under a "# host NAME" header each: on full nodes the
server files of the policy, hacluster's password marker (shared mode, managed
password) and the live authkey rotation's marker; on remote nodes the authkey;
on each client host the key, env and password files of every admin the store
records there. Put a host's rules on that host (/etc/audit/rules.d/pcmkeys.rules)
and load them with augenrules --load: the host's audit trail then records
every write and attribute change to these files, and by whom (ausearch -k
pcmkeys). Paths are the host's own (under its root, if the config gives one).

A client file in an admin's home is resolved on a local host; on a host
reached over SSH the home is not known without logging in, so its rule is
printed commented out, naming ~USER, for you to adjust. Nothing is changed
and no host is contacted.`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			return withEnv(g, false, func(ctx context.Context, env *rotate.Env) error {
				files, err := rotate.ManagedFiles(ctx, env)
				if err != nil {
					return err
				}
				rs := auditdRules(ctx, env.Config, files)
				return printResult(g, rs, rs.text())
			})
		},
	}
}

// auditdRuleSet is what `pcmkeys audit rules` prints.
type auditdRuleSet struct {
	Cluster string       `json:"cluster"`
	Hosts   []auditdHost `json:"hosts"`
}

// auditdHost is one host's rules, sorted and without duplicates.
type auditdHost struct {
	Host string `json:"host"`
	// InConfig is false for a client host the store records an admin's
	// files on but the config no longer lists.
	InConfig bool     `json:"in_config"`
	Rules    []string `json:"rules"`
	// Unresolved are files whose rule cannot be written as it is: the
	// rule is printed commented out, with the reason.
	Unresolved []auditdUnresolved `json:"unresolved"`
}

// auditdUnresolved is a file pcmkeys manages whose rule needs an
// operator's hand.
type auditdUnresolved struct {
	Path   string `json:"path"`
	Rule   string `json:"rule"` // to adjust, then load
	Reason string `json:"reason"`
}

// auditdRules turns the files pcmkeys manages into each host's rules.
// Homes are looked up on local hosts only.
func auditdRules(ctx context.Context, cfg *config.Config, files []rotate.ManagedFile) auditdRuleSet {
	hosts := map[string]*auditdHost{}
	for _, h := range cfg.Hosts { // a host with nothing to watch is listed too
		hosts[h.Name] = &auditdHost{Host: h.Name, InConfig: true, Rules: []string{}, Unresolved: []auditdUnresolved{}}
	}
	type home struct{ dir, why string }
	homes := map[[2]string]home{} // by host and user
	for _, f := range files {
		hh := hosts[f.Host]
		if hh == nil {
			hh = &auditdHost{Host: f.Host, InConfig: f.InConfig, Rules: []string{}, Unresolved: []auditdUnresolved{}}
			hosts[f.Host] = hh
		}
		h, _ := cfg.Host(f.Host)
		if !strings.HasPrefix(f.Path, "~/") {
			hh.add(h.Root, f.Path)
			continue
		}
		key := [2]string{f.Host, f.User}
		hm, ok := homes[key]
		if !ok {
			hm.dir, hm.why = localHome(ctx, f.Host, h.Root, h.Local, f.User)
			homes[key] = hm
		}
		if hm.why != "" {
			rel := "~" + f.User + f.Path[1:] // ~alice/.pcmkeys/…
			if h.Root != "" {
				rel = path.Join(h.Root, rel)
			}
			rule := "#" + printable(auditdRule(rel))
			hh.Unresolved = append(hh.Unresolved, auditdUnresolved{Path: f.Path, Rule: rule, Reason: hm.why})
			continue
		}
		hh.add(h.Root, path.Join(hm.dir, f.Path[2:]))
	}
	out := auditdRuleSet{Cluster: cfg.Cluster, Hosts: []auditdHost{}}
	for _, hh := range hosts {
		slices.Sort(hh.Rules)
		hh.Rules = slices.Compact(hh.Rules)
		slices.SortFunc(hh.Unresolved, func(a, b auditdUnresolved) int {
			return cmp.Or(strings.Compare(a.Reason, b.Reason), strings.Compare(a.Rule, b.Rule))
		})
		hh.Unresolved = slices.CompactFunc(hh.Unresolved, func(a, b auditdUnresolved) bool { return a.Rule == b.Rule })
		out.Hosts = append(out.Hosts, *hh)
	}
	slices.SortFunc(out.Hosts, func(a, b auditdHost) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// localHome returns user's home on a local host, read from the host's own
// user database (under its root); on any other host, why it is not known.
func localHome(ctx context.Context, host, root string, local bool, user string) (home, why string) {
	if !local {
		under := ""
		if root != "" {
			under = " (under the host's root " + root + ")"
		}
		return "", fmt.Sprintf("%s's home on %s is known only by logging in there: replace ~%s%s with it, then remove the leading '#'", user, host, user, under)
	}
	l, err := distribute.NewLocal(host, root)
	if err == nil {
		var acct distribute.Account
		acct, err = l.LookupUser(ctx, user)
		home = acct.Home
		if err == nil && !path.IsAbs(home) {
			err = fmt.Errorf("home %q is not absolute", home)
		}
	}
	if err != nil {
		return "", printable(fmt.Sprintf("%s's home on %s is not known: %v; adjust ~%s, then remove the leading '#'", user, host, err, user))
	}
	return home, ""
}

// printable replaces control characters, so that a comment stays one
// line of a rules file.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// add adds the rule for p on a host whose root is root, or, if auditctl
// could not read it, the reason.
func (h *auditdHost) add(root, p string) {
	if root != "" {
		p = path.Join(root, p)
	}
	rule := auditdRule(p)
	if why := auditdUnfit(p, rule); why != "" {
		h.Unresolved = append(h.Unresolved, auditdUnresolved{Path: p, Rule: "#" + printable(rule), Reason: why})
		return
	}
	h.Rules = append(h.Rules, rule)
}

// auditdRule is the watch rule for p, escaped as auditctl's rules files
// read it: fields are split at spaces; "\ " is a space and "\\" a
// backslash in a field.
func auditdRule(p string) string {
	esc := strings.NewReplacer(`\`, `\\`, " ", `\ `).Replace(p)
	return "-w " + esc + " -p wa -k " + auditdKey
}

// auditdUnfit says why auditctl would refuse the rule for p, or "".
func auditdUnfit(p, rule string) string {
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return "the path holds a control character, which an auditd rules file cannot"
		}
	}
	switch {
	case len(p) > auditctlPathMax:
		return fmt.Sprintf("the path is longer than auditctl takes (%d bytes)", auditctlPathMax)
	case len(path.Base(p)) > auditctlNameMax:
		return fmt.Sprintf("the file's name is longer than auditctl takes (%d bytes)", auditctlNameMax)
	case len(rule) > auditctlLineMax:
		return fmt.Sprintf("the rule is longer than a line of an auditd rules file (%d bytes)", auditctlLineMax)
	}
	return ""
}

// text renders the rules as a rules file, one section per host.
func (rs auditdRuleSet) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# auditd rules for the files pcmkeys manages on cluster %s (pcmkeys audit rules).\n", rs.Cluster)
	b.WriteString("# Put each host's section on that host, in /etc/audit/rules.d/pcmkeys.rules, then\n")
	b.WriteString("# augenrules --load; ausearch -k pcmkeys shows who wrote to or changed them.\n")
	b.WriteString("# A watch's directory must exist when the rules are loaded.\n")
	for _, h := range rs.Hosts {
		fmt.Fprintf(&b, "\n# host %s\n", h.Host)
		if !h.InConfig {
			b.WriteString("# (the config no longer lists this host; the store records files of an admin here)\n")
		}
		if len(h.Rules) == 0 && len(h.Unresolved) == 0 {
			b.WriteString("# (no files yet)\n")
		}
		for _, r := range h.Rules {
			b.WriteString(r + "\n")
		}
		said := ""
		for _, u := range h.Unresolved {
			if u.Reason != said {
				b.WriteString("# " + u.Reason + "\n")
				said = u.Reason
			}
			b.WriteString(u.Rule + "\n")
		}
	}
	return b.String()
}
