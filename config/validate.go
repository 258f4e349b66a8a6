package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pcmkeys/pcmkeys/policies"
)

// Defaults that are not policies.
const (
	DefaultSSHUser        = "root"
	DefaultKnownHosts     = "~/.ssh/known_hosts"
	DefaultSSHPort        = 22
	DefaultConnectTimeout = 10 * time.Second
	DefaultCommandTimeout = 60 * time.Second
	// Restart commands, run by rotate --restart.
	DefaultRestartNode       = "systemctl restart pacemaker"
	DefaultRestartRemoteNode = "systemctl restart pacemaker_remote"
	DefaultVaultMount        = "secret"
	// DefaultVerifyCommand is the client a login check runs as the admin.
	DefaultVerifyCommand = "cibadmin --query"
	// DefaultSyslogSocket is the local syslog socket (journald serves it
	// too) audit records go to with audit.syslog: true.
	DefaultSyslogSocket = "/dev/log"
)

// validator builds a Config from the decoded document and collects every
// problem with its line.
type validator struct {
	root     *yaml.Node
	dir      string
	problems []Problem
}

func (v *validator) add(path []any, err error) {
	field := make([]string, 0, len(path))
	for _, p := range path {
		switch s := p.(type) {
		case string:
			field = append(field, s)
		case int:
			field[len(field)-1] += fmt.Sprintf("[%d]", s)
		}
	}
	for _, e := range splitJoined(err) {
		v.problems = append(v.problems, Problem{Line: lineOf(v.root, path...), Field: strings.Join(field, "."), Msg: e.Error()})
	}
}

// splitJoined unpacks errors.Join so each problem gets its own line.
func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return []error{err}
}

func p(path ...any) []any { return path }

func (v *validator) build(raw file) *Config {
	cfg := &Config{Cluster: raw.Cluster}
	if err := policies.ValidateHost(raw.Cluster); err != nil {
		v.add(p("cluster"), fmt.Errorf("cluster name: %w", err))
	}
	cfg.Store = v.store(raw.Store, raw.Cluster)
	cfg.SSH = v.ssh(raw.SSH)
	cfg.Policy = v.policy(raw.Policy, raw.IdentityMode, raw.Cluster)
	v.hosts(cfg, raw)
	cfg.CIB = v.cib(raw.CIB, cfg)
	cfg.Restart = Restart{Node: raw.Restart.Node, RemoteNode: raw.Restart.RemoteNode}
	if cfg.Restart.Node == "" {
		cfg.Restart.Node = DefaultRestartNode
	}
	if cfg.Restart.RemoteNode == "" {
		cfg.Restart.RemoteNode = DefaultRestartRemoteNode
	}
	for _, c := range []struct{ key, val string }{{"node", cfg.Restart.Node}, {"remote_node", cfg.Restart.RemoteNode}} {
		if strings.ContainsAny(c.val, "\x00\n\r") {
			v.add(p("restart", c.key), errors.New("the command must be one line"))
		}
	}
	cfg.AuditPath = v.localPath(p("audit", "path"), raw.Audit.Path)
	if cfg.AuditPath == "" {
		cfg.AuditPath = "/var/log/pcmkeys/" + raw.Cluster + ".audit.jsonl"
	}
	cfg.AuditSyslog = v.auditSyslog(raw.Audit)
	return cfg
}

// auditSyslog resolves the syslog socket audit records also go to: empty
// unless audit.syslog is true.
func (v *validator) auditSyslog(a auditFile) string {
	if !a.Syslog {
		if a.SyslogSocket != "" {
			v.add(p("audit", "syslog_socket"), errors.New("applies with syslog: true"))
		}
		return ""
	}
	if a.SyslogSocket == "" {
		return DefaultSyslogSocket
	}
	return v.localPath(p("audit", "syslog_socket"), a.SyslogSocket)
}

func (v *validator) store(s storeFile, cluster string) Store {
	out := Store{Type: s.Type}
	switch s.Type {
	case "file":
		if s.Address != "" || s.Auth != (vaultAuthFile{}) {
			v.add(p("store"), errors.New("address and auth are for a vault store"))
		}
		if s.Path == "" {
			v.add(p("store", "path"), errors.New("required for a file store: the directory that holds the keys"))
		}
		if s.Mount != "" || s.Prefix != "" {
			v.add(p("store"), errors.New("mount and prefix are for a vault store"))
		}
		out.Path = v.localPath(p("store", "path"), s.Path)
		out.Identity = v.localPath(p("store", "identity"), s.Identity)
		if out.Identity == "" && out.Path != "" {
			out.Identity = out.Path + ".agekey"
		}
	case "vault":
		if s.Path != "" || s.Identity != "" {
			v.add(p("store"), errors.New("path and identity are for a file store"))
		}
		out.Address, out.Mount, out.Prefix = s.Address, s.Mount, s.Prefix
		if s.Address != "" && !strings.HasPrefix(s.Address, "https://") && !strings.HasPrefix(s.Address, "http://") {
			v.add(p("store", "address"), fmt.Errorf("%q: want https://HOST:PORT", s.Address))
		}
		out.Auth = v.vaultAuth(s.Auth)
		if out.Mount == "" {
			out.Mount = DefaultVaultMount
		}
		if out.Prefix == "" {
			out.Prefix = "pcmkeys/" + cluster
		}
		for _, part := range []struct{ name, val string }{{"mount", out.Mount}, {"prefix", out.Prefix}} {
			if err := checkVaultPath(part.val); err != nil {
				v.add(p("store", part.name), err)
			}
		}
	case "":
		v.add(p("store", "type"), errors.New(`required: "file" (keys on this machine, encrypted with age) or "vault"`))
	default:
		v.add(p("store", "type"), fmt.Errorf(`%q: want "file" or "vault"`, s.Type))
	}
	return out
}

// vaultAuth checks the login method and resolves its secret files.
func (v *validator) vaultAuth(a vaultAuthFile) VaultAuth {
	out := VaultAuth{Method: a.Method, MountPath: a.MountPath, RoleID: a.RoleID, Username: a.Username}
	at := func(f string) []any { return p("store", "auth", f) }
	need := func(field, val string) {
		if val == "" {
			v.add(at(field), fmt.Errorf("required for method %s", out.Method))
		}
	}
	forbid := func(fields map[string]string) {
		for f, val := range fields {
			if val != "" {
				v.add(at(f), fmt.Errorf("does not apply to method %s", out.Method))
			}
		}
	}
	switch out.Method {
	case "", "token":
		out.Method = "token"
		forbid(map[string]string{"role_id": a.RoleID, "secret_id_file": a.SecretIDFile, "username": a.Username, "password_file": a.PasswordFile, "mount_path": a.MountPath})
	case "approle":
		need("role_id", a.RoleID)
		need("secret_id_file", a.SecretIDFile)
		forbid(map[string]string{"username": a.Username, "password_file": a.PasswordFile})
		out.SecretIDFile = v.localPath(at("secret_id_file"), a.SecretIDFile)
	case "userpass":
		need("username", a.Username)
		need("password_file", a.PasswordFile)
		forbid(map[string]string{"role_id": a.RoleID, "secret_id_file": a.SecretIDFile})
		out.PasswordFile = v.localPath(at("password_file"), a.PasswordFile)
	default:
		v.add(at("method"), fmt.Errorf("%q: want token, approle or userpass", a.Method))
	}
	if a.MountPath != "" {
		if err := checkVaultPath(a.MountPath); err != nil {
			v.add(at("mount_path"), err)
		}
	}
	return out
}

// checkVaultPath requires slash-separated components that are valid names.
func checkVaultPath(s string) error {
	for _, c := range strings.Split(s, "/") {
		if err := policies.ValidateHost(c); err != nil {
			return fmt.Errorf("%q: each '/'-separated part must be a plain name: %w", s, err)
		}
	}
	return nil
}

// localPath resolves a path on the operator's machine: "~/" against the
// operator's home, relative paths against the config file's directory.
func (v *validator) localPath(path []any, s string) string {
	if s == "" {
		return ""
	}
	if strings.ContainsAny(s, "\x00\n\r") {
		v.add(path, errors.New("path contains a control character"))
		return ""
	}
	if s == "~" || strings.HasPrefix(s, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			v.add(path, fmt.Errorf("cannot expand ~: %w", err))
			return ""
		}
		return filepath.Join(home, s[1:])
	}
	if strings.HasPrefix(s, "~") {
		v.add(path, errors.New("only ~/ (your own home) is expanded here"))
		return ""
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(v.dir, s)
	}
	return filepath.Clean(s)
}

func (v *validator) hosts(cfg *Config, raw file) {
	seen := map[string]string{}      // lower-case name -> name
	endpoints := map[string]string{} // address:port -> name
	groups := []struct {
		key   string
		role  Role
		hosts []hostFile
	}{{"nodes", RoleNode, raw.Nodes}, {"remote_nodes", RoleRemoteNode, raw.RemoteNodes}, {"clients", RoleClient, raw.Clients}}
	for _, g := range groups {
		for i, h := range g.hosts {
			at := func(f ...any) []any { return append(p(g.key, i), f...) }
			if err := policies.ValidateHost(h.Name); err != nil {
				v.add(at("name"), err)
				continue
			}
			if first, dup := seen[strings.ToLower(h.Name)]; dup {
				if first == h.Name {
					v.add(at("name"), fmt.Errorf("host %q is listed twice", h.Name))
				} else {
					v.add(at("name"), fmt.Errorf("host %q is %q again (host names are not case-sensitive)", h.Name, first))
				}
				continue
			}
			seen[strings.ToLower(h.Name)] = h.Name
			host := Host{Name: h.Name, Address: h.Address, Port: DefaultSSHPort, Local: h.Local, Role: g.role}
			if host.Address == "" {
				host.Address = h.Name
			}
			if h.Port != nil {
				host.Port, host.PortSet = *h.Port, true
				if host.Port < 1 || host.Port > 65535 {
					v.add(at("port"), fmt.Errorf("%d is not a TCP port (1-65535; leave it out for 22)", *h.Port))
				}
			}
			if !h.Local {
				if err := checkAddress(host.Address); err != nil {
					v.add(at("address"), err)
				} else {
					ep := net.JoinHostPort(strings.ToLower(host.Address), strconv.Itoa(host.Port))
					if other, dup := endpoints[ep]; dup {
						v.add(at("address"), fmt.Errorf("%s is host %q again: two names for one host would race on the same files", ep, other))
					}
					endpoints[ep] = h.Name
				}
			}
			if h.Local && (h.Address != "" || h.Port != nil) {
				v.add(at("local"), errors.New("a local host is written directly: address and port do not apply"))
			}
			host.User = v.hostUser(at("user"), h, cfg.SSH.Become)
			if h.Root != "" {
				host.Root = v.localPath(at("root"), h.Root)
				if !h.Local {
					// A root on an SSH host is a path on that host.
					host.Root = filepath.Clean(h.Root)
					if !filepath.IsAbs(h.Root) {
						v.add(at("root"), errors.New("the root of a remote host must be absolute"))
					}
				}
			}
			cfg.Hosts = append(cfg.Hosts, host)
		}
	}
	if len(raw.Nodes) == 0 {
		v.add(p("nodes"), errors.New("at least one cluster node is required"))
	}
}

// checkAddress accepts a DNS host name (letters, digits, '-' and '.',
// labels of at most 63 characters) or an IP address literal.
func checkAddress(a string) error {
	if net.ParseIP(a) != nil {
		return nil
	}
	bad := fmt.Errorf("%q is not a host name or an IP address", a)
	if a == "" || len(a) > 253 {
		return bad
	}
	for _, label := range strings.Split(strings.TrimSuffix(a, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return bad
			}
		}
	}
	return nil
}

func (v *validator) cib(c cibFile, cfg *Config) CIB {
	out := CIB{Server: c.Server, Port: c.Port, CloseSessions: c.CloseSessions == nil || *c.CloseSessions}
	out.VerifyCommand = c.VerifyCommand
	if out.VerifyCommand == "" {
		out.VerifyCommand = DefaultVerifyCommand
	} else if strings.ContainsAny(out.VerifyCommand, "\x00\n\r") {
		v.add(p("cib", "verify_command"), errors.New("the command must be one line"))
	}
	switch c.Password {
	case "", "managed":
		out.ManagePassword = true
	case "unmanaged":
	default:
		v.add(p("cib", "password"), fmt.Errorf("%q: want managed or unmanaged", c.Password))
	}
	if out.Server == "" {
		if nodes := cfg.HostsWithRole(RoleNode); len(nodes) > 0 {
			out.Server = nodes[0].Address
		}
	} else if err := checkAddress(out.Server); err != nil {
		v.add(p("cib", "server"), err)
	}
	if out.Port == 0 {
		v.add(p("cib", "port"), errors.New("required: the cluster's remote-tls-port (crm_attribute --type crm_config --name remote-tls-port --query)"))
	} else if out.Port < 1 || out.Port > 65535 {
		v.add(p("cib", "port"), fmt.Errorf("%d is not a TCP port", out.Port))
	}
	return out
}

// policy builds the cluster's policy from the file's policy section and
// identity_mode; policies.Policy.Validate judges it, and the rules that
// need the cluster's name (no two files at one path) are checked here.
func (v *validator) policy(raw policyFile, identityMode, cluster string) policies.Policy {
	pol := policies.Default()
	if identityMode != "" {
		pol.IdentityMode = policies.IdentityMode(identityMode)
	}
	if raw.PSKBytes != 0 {
		pol.PSKBytes = raw.PSKBytes
	}
	if raw.AuthkeyBytes != 0 {
		pol.AuthkeyBytes = raw.AuthkeyBytes
	}
	for _, age := range []struct {
		key string
		val string
		dst *time.Duration
	}{{"cib", raw.RotateAfter.CIB, &pol.RotateAfter.CIB}, {"authkey", raw.RotateAfter.Authkey, &pol.RotateAfter.Authkey}} {
		if age.val == "" {
			continue
		}
		d, err := policies.ParseAge(age.val)
		if err != nil {
			v.add(p("policy", "rotate_after", age.key), err)
			continue
		}
		*age.dst = d
	}
	for name, fp := range raw.Files {
		kind := policies.FileKind(name)
		cur, ok := pol.Files[kind]
		if !ok {
			v.add(p("policy", "files", name), fmt.Errorf("unknown file %q (want cib_credentials, authkey, client_key or client_env)", name))
			continue
		}
		if fp.Path != "" {
			cur.Path = fp.Path
		}
		if fp.Owner != "" {
			cur.Owner = fp.Owner
		}
		if fp.Group != "" {
			cur.Group = fp.Group
		}
		if fp.Mode.set {
			cur.Mode = fp.Mode.m
		}
		pol.Files[kind] = cur
	}
	v.policyProblems(pol.Validate())
	for _, k := range []policies.FileKind{policies.ClientKey, policies.ClientEnv, policies.ClientPassword} {
		fp := pol.Files[k]
		fp.Path = strings.ReplaceAll(fp.Path, "{cluster}", cluster)
		pol.Files[k] = fp
	}
	if a, b := pol.Files[policies.CIBCredentials].Path, pol.Files[policies.Authkey].Path; a == b {
		v.add(p("policy", "files"), fmt.Errorf("cib_credentials and authkey are both %s", a))
	}
	for i, d := range raw.ClientDirs {
		if err := policies.CheckClientDir(d); err != nil {
			v.add(p("policy", "client_dirs", i), err)
			continue
		}
		pol.ClientDirs = append(pol.ClientDirs, d)
	}
	if a, b := pol.Files[policies.ClientKey].Path, pol.Files[policies.ClientEnv].Path; a == b {
		v.add(p("policy", "files"), fmt.Errorf("client_key and client_env are both %s", a))
	}
	for _, k := range []policies.FileKind{policies.ClientKey, policies.ClientEnv} {
		if a := pol.Files[k].Path; a == pol.Files[policies.ClientPassword].Path {
			v.add(p("policy", "files"), fmt.Errorf("%s and client_password are both %s", k, a))
		}
	}
	return pol
}

// policyProblems places each problem policies.Policy.Validate found at its
// field: identity_mode at the top level, the others in the policy section.
func (v *validator) policyProblems(err error) {
	if err == nil {
		return
	}
	for _, e := range splitJoined(err) {
		var fe *policies.FieldError
		if !errors.As(e, &fe) {
			v.add(p("policy"), e)
			continue
		}
		var path []any
		if fe.Field != "identity_mode" {
			path = p("policy")
		}
		for _, f := range strings.Split(fe.Field, ".") {
			path = append(path, f)
		}
		v.add(path, fe.Err)
	}
}
