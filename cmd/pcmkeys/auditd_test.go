package main

import (
	"context"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/internal/testroot"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/rotate"
)

// auditctlRule reads one line of a rules file as auditctl -R does
// (audit-userspace src/auditctl.c, fileopt: a line is read into 6144
// bytes; fields are split at spaces, "\ " being a space and "\\" a
// backslash inside one; a first field starting with '#' is a comment) and
// checks a watch rule as auditctl's options do: -w an absolute path
// shorter than PATH_MAX whose last part fits NAME_MAX, -p of r, w, x and
// a, -k at most 256 bytes without \x01. It returns the watched path, or
// "" for a comment or a blank line. pcmkeys's rules have one shape, so
// any other is an error here.
func auditctlRule(line string) (string, error) {
	if len(line) > 6143 || strings.Contains(line, "\n") {
		return "", fmt.Errorf("longer than a line auditctl reads (%d bytes)", len(line))
	}
	b := []byte(line)
	esc := false
	for i := range b { // auditctl's preprocess
		if b[i] == '\\' && !esc {
			esc = true
			continue
		}
		if esc {
			switch b[i] {
			case ' ':
				b[i-1], b[i] = 7, 7
			case '\\':
				b[i-1], b[i] = 4, 4
			}
			esc = false
		}
	}
	var fields []string
	for _, f := range strings.Split(string(b), " ") {
		if f != "" {
			f = strings.NewReplacer("\x07\x07", " ", "\x04\x04", `\`).Replace(f) // postprocess
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
		return "", nil
	}
	if len(fields) != 6 || fields[0] != "-w" || fields[2] != "-p" || fields[4] != "-k" {
		return "", fmt.Errorf("not -w PATH -p PERMS -k KEY: %q", fields)
	}
	p, perms, key := fields[1], fields[3], fields[5]
	switch {
	case len(p) >= 4096:
		return "", fmt.Errorf("path too long")
	case !strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("path %q must start with '/'", p)
	case len(path.Base(p)) > 255:
		return "", fmt.Errorf("base name too long")
	case strings.Contains(p, "..") || strings.ContainsAny(p, "*?"):
		return "", fmt.Errorf("path %q: auditctl warns about relative or wildcard notation", p)
	case perms == "" || strings.Trim(perms, "rwxa") != "":
		return "", fmt.Errorf("permission %q: want r, w, x, a", perms)
	case len(key) > 256 || strings.Contains(key, "\x01"):
		return "", fmt.Errorf("key %q", key)
	}
	return p, nil
}

// The checker refuses what auditctl refuses (else the tests that use it
// could not fail).
func TestAuditctlRule(t *testing.T) {
	good := []struct{ line, path string }{
		{"-w /etc/pacemaker/authkey -p wa -k pcmkeys", "/etc/pacemaker/authkey"},
		{`-w /srv/my\ image/a\\b -p wa -k pcmkeys`, `/srv/my image/a\b`},
		{"# host node1", ""},
		{"#-w ~alice/.pcmkeys/c.key -p wa -k pcmkeys", ""},
		{"", ""},
	}
	for _, g := range good {
		if p, err := auditctlRule(g.line); err != nil || p != g.path {
			t.Errorf("%q: %q, %v; want %q", g.line, p, err, g.path)
		}
	}
	for _, bad := range []string{
		"-w etc/authkey -p wa -k pcmkeys",
		"-w ~alice/.pcmkeys/c.key -p wa -k pcmkeys",
		"-w /srv/my image/a -p wa -k pcmkeys",
		"-w /etc/authkey -p wz -k pcmkeys",
		"-w /etc/authkey -p wa -k " + strings.Repeat("k", 257),
		"-w /etc/" + strings.Repeat("a", 256) + " -p wa -k pcmkeys",
		"-w /" + strings.Repeat("a/", 3000) + "x -p wa -k pcmkeys",
		"-w /etc/../authkey -p wa -k pcmkeys",
		"-w /etc/authkey -p wa",
	} {
		if _, err := auditctlRule(bad); err == nil {
			t.Errorf("%.80q: accepted", bad)
		}
	}
}

// cmdAuditctlCheck is the script command "auditctl-check FILE": every line
// of FILE reads as auditctl reads a rules file, and it holds a rule.
func cmdAuditctlCheck(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: auditctl-check FILE")
	}
	rules := 0
	for i, line := range strings.Split(strings.TrimSuffix(ts.ReadFile(args[0]), "\n"), "\n") {
		p, err := auditctlRule(line)
		if err != nil {
			ts.Fatalf("%s line %d: %v", args[0], i+1, err)
		}
		if p != "" {
			rules++
		}
	}
	if rules == 0 {
		ts.Fatalf("%s: no rule", args[0])
	}
}

// auditdCases are configs and store records of every shape the rules
// cover: both identity modes, roles, local and SSH hosts, roots (one with
// a space), homes resolved or not, admins active, being revoked and
// revoked, a client host the config no longer lists.
func TestAuditdRules(t *testing.T) {
	r := testroot.New(t)
	spaced := t.TempDir() + "/my root"
	if err := os.Rename(r.Dir, spaced); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`cluster: prod
store: {type: file, path: store}
cib: {port: 5403}
nodes:
  - {name: node1, local: true, root: %q}
  - {name: node2, address: 192.0.2.2}
remote_nodes:
  - {name: remote1, address: 192.0.2.3, root: /srv/image}
clients:
  - {name: ws1, address: 192.0.2.4}
  - {name: ws2, address: 192.0.2.5}
policy:
  files:
    authkey: {path: /etc/pacemaker/auth key}
`, spaced)
	client := func(host, key string) keystore.Client {
		return keystore.Client{Host: host, KeyFile: key, EnvFile: strings.TrimSuffix(key, ".key") + ".env"}
	}
	admins := []keystore.Admin{
		{User: "alice", Identity: "alice", Clients: []keystore.Client{client("node1", "~/.pcmkeys/prod.key"), client("ws1", "~/.pcmkeys/prod.key")}},
		{User: "bob", Identity: "bob", Clients: []keystore.Client{client("ws1", "/srv/keys/bob.key")}, Revoked: time.Now()},
		{User: "carol", Identity: "carol", Clients: []keystore.Client{client("ws1", "/srv/keys/carol.key")}, Revoked: time.Now(), Finished: time.Now()},
		{User: "dave", Identity: "dave", Clients: []keystore.Client{client("gone", "~/.pcmkeys/prod.key"), client("remote1", "~/k.key")}},
		{User: "erin", Identity: "erin", Clients: []keystore.Client{client("node1", "~/.pcmkeys/prod.key")}}, // not on node1
		// Two admins' files at one path are one rule.
		{User: "frank", Identity: "frank", Clients: []keystore.Client{client("ws1", "/srv/keys/bob.key")}},
	}
	esc := strings.ReplaceAll(spaced, " ", `\ `)
	want := map[string]auditdHost{
		"node1": {Rules: []string{
			"-w " + esc + "/etc/pacemaker/auth\\ key -p wa -k pcmkeys",
			"-w " + esc + "/etc/pacemaker/cib-credentials -p wa -k pcmkeys",
			"-w " + esc + "/etc/pacemaker/pcmkeys-live-rotation -p wa -k pcmkeys",
			"-w " + esc + "/home/alice/.pcmkeys/prod.env -p wa -k pcmkeys",
			"-w " + esc + "/home/alice/.pcmkeys/prod.key -p wa -k pcmkeys",
		}, Unresolved: []auditdUnresolved{
			{Path: "~/.pcmkeys/prod.env", Rule: "#-w " + esc + "/~erin/.pcmkeys/prod.env -p wa -k pcmkeys"},
			{Path: "~/.pcmkeys/prod.key", Rule: "#-w " + esc + "/~erin/.pcmkeys/prod.key -p wa -k pcmkeys"},
		}},
		"node2": {Rules: []string{
			"-w /etc/pacemaker/auth\\ key -p wa -k pcmkeys",
			"-w /etc/pacemaker/cib-credentials -p wa -k pcmkeys",
			"-w /etc/pacemaker/pcmkeys-live-rotation -p wa -k pcmkeys",
		}},
		"remote1": {Rules: []string{"-w /srv/image/etc/pacemaker/auth\\ key -p wa -k pcmkeys"}, Unresolved: []auditdUnresolved{
			{Path: "~/k.env", Rule: "#-w /srv/image/~dave/k.env -p wa -k pcmkeys"},
			{Path: "~/k.key", Rule: "#-w /srv/image/~dave/k.key -p wa -k pcmkeys"},
		}},
		"ws1": {Rules: []string{
			"-w /srv/keys/bob.env -p wa -k pcmkeys",
			"-w /srv/keys/bob.key -p wa -k pcmkeys",
		}, Unresolved: []auditdUnresolved{
			{Path: "~/.pcmkeys/prod.env", Rule: "#-w ~alice/.pcmkeys/prod.env -p wa -k pcmkeys"},
			{Path: "~/.pcmkeys/prod.key", Rule: "#-w ~alice/.pcmkeys/prod.key -p wa -k pcmkeys"},
		}},
		"ws2": {},
		"gone": {Unresolved: []auditdUnresolved{
			{Path: "~/.pcmkeys/prod.env", Rule: "#-w ~dave/.pcmkeys/prod.env -p wa -k pcmkeys"},
			{Path: "~/.pcmkeys/prod.key", Rule: "#-w ~dave/.pcmkeys/prod.key -p wa -k pcmkeys"},
		}},
	}
	// Shared mode with a managed password adds hacluster's password marker
	// on full nodes and each admin's password file.
	shared := map[string]auditdHost{
		"node1": {Rules: []string{"-w " + esc + "/etc/pacemaker/pcmkeys-password -p wa -k pcmkeys", "-w " + esc + "/home/alice/.pcmkeys/prod.passwd -p wa -k pcmkeys"},
			Unresolved: []auditdUnresolved{{Path: "~/.pcmkeys/prod.passwd", Rule: "#-w " + esc + "/~erin/.pcmkeys/prod.passwd -p wa -k pcmkeys"}}},
		"node2":   {Rules: []string{"-w /etc/pacemaker/pcmkeys-password -p wa -k pcmkeys"}},
		"remote1": {Unresolved: []auditdUnresolved{{Path: "~/k.key.passwd", Rule: "#-w /srv/image/~dave/k.key.passwd -p wa -k pcmkeys"}}},
		"ws1": {Rules: []string{"-w /srv/keys/bob.key.passwd -p wa -k pcmkeys"},
			Unresolved: []auditdUnresolved{{Path: "~/.pcmkeys/prod.passwd", Rule: "#-w ~alice/.pcmkeys/prod.passwd -p wa -k pcmkeys"}}},
		"gone": {Unresolved: []auditdUnresolved{{Path: "~/.pcmkeys/prod.passwd", Rule: "#-w ~dave/.pcmkeys/prod.passwd -p wa -k pcmkeys"}}},
	}
	for _, mode := range []string{"per-user", "shared"} {
		t.Run(mode, func(t *testing.T) {
			cfg, err := config.Parse([]byte(doc+"identity_mode: "+mode+"\n"), t.TempDir()+"/pcmkeys.yaml")
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			st, err := rotate.OpenStore(ctx, cfg, true)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for _, a := range admins {
				if _, err := st.PutAdmin(ctx, a); err != nil {
					t.Fatal(err)
				}
			}
			files, err := rotate.ManagedFiles(ctx, &rotate.Env{Config: cfg, Store: st})
			if err != nil {
				t.Fatal(err)
			}
			rs := auditdRules(ctx, cfg, files)
			if rs.Cluster != "prod" || len(rs.Hosts) != len(want) {
				t.Fatalf("cluster %q, %d hosts; want prod, %d", rs.Cluster, len(rs.Hosts), len(want))
			}
			for i, h := range rs.Hosts {
				w, ok := want[h.Host]
				if !ok || i > 0 && rs.Hosts[i-1].Host >= h.Host {
					t.Fatalf("hosts %v: not sorted, or unexpected %s", rs.Hosts, h.Host)
				}
				wantRules := slices.Clone(w.Rules)
				var wantU []string
				for _, u := range w.Unresolved {
					wantU = append(wantU, u.Path+" "+u.Rule)
				}
				if mode == "shared" {
					wantRules = append(wantRules, shared[h.Host].Rules...)
					for _, u := range shared[h.Host].Unresolved {
						wantU = append(wantU, u.Path+" "+u.Rule)
					}
				}
				slices.Sort(wantRules)
				slices.Sort(wantU)
				if strings.Join(h.Rules, "\n") != strings.Join(wantRules, "\n") {
					t.Errorf("%s rules:\n%s\nwant\n%s", h.Host, strings.Join(h.Rules, "\n"), strings.Join(wantRules, "\n"))
				}
				if h.InConfig != (h.Host != "gone") {
					t.Errorf("%s: in_config %v", h.Host, h.InConfig)
				}
				var got []string
				for _, u := range h.Unresolved {
					if !strings.Contains(u.Reason, "'#'") {
						t.Errorf("%s: reason %q does not say what to do", h.Host, u.Reason)
					}
					got = append(got, u.Path+" "+u.Rule)
				}
				if strings.Join(got, "\n") != strings.Join(wantU, "\n") {
					t.Errorf("%s unresolved:\n%s\nwant\n%s", h.Host, strings.Join(got, "\n"), strings.Join(wantU, "\n"))
				}
			}
			// The text is a rules file auditctl reads: every rule, and only
			// rules and comments.
			text := rs.text()
			var paths []string
			for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
				p, err := auditctlRule(line)
				if err != nil {
					t.Fatalf("line %d %q: %v", i+1, line, err)
				}
				if p != "" {
					paths = append(paths, p)
				}
			}
			n := 0
			for _, h := range rs.Hosts {
				n += len(h.Rules)
			}
			if len(paths) != n || !strings.Contains(text, "# host ws2\n# (no files yet)\n") || !strings.Contains(text, "# (the config no longer lists this host") {
				t.Errorf("%d rules in the text, want %d:\n%s", len(paths), n, text)
			}
			if !strings.Contains(text, "\n# alice's home on ws1 is known only by logging in there: replace ~alice with it, then remove the leading '#'\n#-w ~alice/") {
				t.Errorf("the unresolved rule's reason is not its comment:\n%s", text)
			}
		})
	}
}

// A path auditctl cannot take is not printed as a rule.
func TestAuditdUnfit(t *testing.T) {
	var h auditdHost
	h.add("", "/etc/a\tb")
	h.add("", "/etc/"+strings.Repeat("n", 256))
	h.add("", "/"+strings.Repeat("d/", 2100)+"f")
	h.add("", "/etc/ok")
	if len(h.Rules) != 1 || len(h.Unresolved) != 3 {
		t.Fatalf("rules %q, unresolved %+v", h.Rules, h.Unresolved)
	}
	for _, u := range h.Unresolved {
		if strings.ContainsAny(u.Rule, "\t\n") || !strings.HasPrefix(u.Rule, "#") {
			t.Errorf("unresolved rule %.60q is not a one-line comment", u.Rule)
		}
	}
}

// testdata/script/audit_rules.txtar runs on a copy of the quickstart's
// config; this keeps the copy the quickstart's.
func TestQuickstartConfigCopy(t *testing.T) {
	real, err := os.ReadFile("../../testdata/quickstart/pcmkeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ar, err := txtar.ParseFile("testdata/script/audit_rules.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ar.Files {
		if f.Name == "pcmkeys.yaml" {
			if string(f.Data) != string(real) {
				t.Errorf("audit_rules.txtar's pcmkeys.yaml is not testdata/quickstart/pcmkeys.yaml:\n%s", f.Data)
			}
			return
		}
	}
	t.Error("audit_rules.txtar has no pcmkeys.yaml")
}
