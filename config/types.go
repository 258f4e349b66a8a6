package config

import (
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pcmkeys/pcmkeys/policies"
)

// file is the YAML document as written. Every field is documented in the
// README's config reference.
type file struct {
	Cluster      string      `yaml:"cluster"`
	Store        storeFile   `yaml:"store"`
	IdentityMode string      `yaml:"identity_mode"`
	SSH          sshFile     `yaml:"ssh"`
	CIB          cibFile     `yaml:"cib"`
	Nodes        []hostFile  `yaml:"nodes"`
	RemoteNodes  []hostFile  `yaml:"remote_nodes"`
	Clients      []hostFile  `yaml:"clients"`
	Policy       policyFile  `yaml:"policy"`
	Audit        auditFile   `yaml:"audit"`
	Restart      restartFile `yaml:"restart"`
}

type restartFile struct {
	Node       string `yaml:"node"`
	RemoteNode string `yaml:"remote_node"`
}

type auditFile struct {
	Path         string `yaml:"path"`
	Syslog       bool   `yaml:"syslog"`
	SyslogSocket string `yaml:"syslog_socket"`
}

type storeFile struct {
	Type     string        `yaml:"type"`
	Path     string        `yaml:"path"`
	Identity string        `yaml:"identity"`
	Address  string        `yaml:"address"`
	Mount    string        `yaml:"mount"`
	Prefix   string        `yaml:"prefix"`
	Auth     vaultAuthFile `yaml:"auth"`
}

type vaultAuthFile struct {
	Method       string `yaml:"method"`
	MountPath    string `yaml:"mount_path"`
	RoleID       string `yaml:"role_id"`
	SecretIDFile string `yaml:"secret_id_file"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

type sshFile struct {
	User           string    `yaml:"user"`
	KnownHosts     string    `yaml:"known_hosts"`
	Become         string    `yaml:"become"`
	IdentityFiles  []string  `yaml:"identity_files"`
	ConnectTimeout duration  `yaml:"connect_timeout"`
	CommandTimeout duration  `yaml:"command_timeout"`
	Jump           *jumpFile `yaml:"jump"`
	ConfigFile     string    `yaml:"config_file"`
	UseSSHConfig   *bool     `yaml:"use_ssh_config"`
}

type jumpFile struct {
	Address string `yaml:"address"`
	Port    int    `yaml:"port"`
}

type cibFile struct {
	Server        string `yaml:"server"`
	Port          int    `yaml:"port"`
	CloseSessions *bool  `yaml:"close_sessions"`
	Password      string `yaml:"password"`
	VerifyCommand string `yaml:"verify_command"`
}

type hostFile struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	Port    *int   `yaml:"port"` // nil: not given (22); 0 is an error
	Root    string `yaml:"root"`
	Local   bool   `yaml:"local"`
	User    string `yaml:"user"`
}

type policyFile struct {
	PSKBytes     int                       `yaml:"psk_bytes"`
	AuthkeyBytes int                       `yaml:"authkey_bytes"`
	RotateAfter  rotateFile                `yaml:"rotate_after"`
	Files        map[string]filePolicyFile `yaml:"files"`
	ClientDirs   []string                  `yaml:"client_dirs"`
}

type rotateFile struct {
	CIB     string `yaml:"cib"`
	Authkey string `yaml:"authkey"`
}

type filePolicyFile struct {
	Path  string `yaml:"path"`
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
	Mode  mode   `yaml:"mode"`
}

// mode is a file mode written in octal, as a string ("0600") or a YAML
// integer. YAML 1.2 reads a bare 0600 as decimal 600, so the raw text of the
// scalar is parsed as octal either way.
type mode struct {
	set bool
	m   fs.FileMode
}

func (m *mode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError("line %d: mode must be an octal number such as \"0600\"", n.Line)
	}
	v, err := strconv.ParseUint(n.Value, 8, 32)
	if err != nil || v > 0o7777 {
		return typeError("line %d: mode %q is not an octal file mode such as \"0600\"", n.Line, n.Value)
	}
	m.set, m.m = true, fs.FileMode(v&0o777)|extraBits(v)
	return nil
}

// typeError lets yaml.v3 collect the problem with the others instead of
// stopping at the first.
func typeError(format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf(format, args...)}}
}

// extraBits keeps setuid, setgid and sticky bits visible to validation,
// which refuses them.
func extraBits(v uint64) fs.FileMode {
	var m fs.FileMode
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// duration is a Go duration string such as "10s".
type duration struct{ d time.Duration }

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v <= 0 {
		return typeError("line %d: %q is not a positive duration such as 10s", n.Line, n.Value)
	}
	d.d = v
	return nil
}

// Host is one machine pcmkeys delivers to.
type Host struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	// Root is a directory under which all of this host's paths are written
	// (a staging image, a test lab); empty for the real root.
	Root string `json:"root,omitempty"`
	// Local hosts are written directly, without SSH.
	Local bool `json:"local"`
	Role  Role `json:"role"`
	// User is the host's own SSH login user (its user:), which wins over
	// ssh.user and the OpenSSH config's User; empty: not written.
	User string `json:"user,omitempty"`
	// PortSet says the config wrote Port; an unwritten port gives way to
	// the OpenSSH config's Port. (An unwritten address is the name, which
	// gives way to its HostName.)
	PortSet bool `json:"-"`
}

// Store says where keys are kept.
type Store struct {
	Type string `json:"type"` // "file" or "vault"
	// File store.
	Path     string `json:"path,omitempty"`
	Identity string `json:"identity,omitempty"`
	// Vault store. An empty Address means VAULT_ADDR.
	Address string    `json:"address,omitempty"`
	Mount   string    `json:"mount,omitempty"`
	Prefix  string    `json:"prefix,omitempty"`
	Auth    VaultAuth `json:"auth"`
}

// VaultAuth is how pcmkeys logs in to Vault. Secrets are read from files,
// never written in the config.
type VaultAuth struct {
	Method       string `json:"method"` // token, approle or userpass
	MountPath    string `json:"mount_path,omitempty"`
	RoleID       string `json:"role_id,omitempty"`
	SecretIDFile string `json:"secret_id_file,omitempty"`
	Username     string `json:"username,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
}

// SSH is how pcmkeys logs in to hosts that are not local.
type SSH struct {
	User           string        `json:"user"`
	KnownHosts     string        `json:"known_hosts"`
	Become         string        `json:"become"`
	IdentityFiles  []string      `json:"identity_files,omitempty"`
	ConnectTimeout time.Duration `json:"connect_timeout"`
	CommandTimeout time.Duration `json:"command_timeout"`
	// Jump is a bastion every SSH connection goes through, if set.
	Jump *Jump `json:"jump,omitempty"`
	// ExtraKnownHosts are read besides KnownHosts: ~/.ssh/known_hosts
	// and /etc/ssh/ssh_known_hosts (a missing one is skipped).
	ExtraKnownHosts []string `json:"extra_known_hosts,omitempty"`
	// DefaultIdentityFiles are offered after the agent's keys when
	// identity_files is not written: ~/.ssh/id_ed25519, id_ecdsa and
	// id_rsa, those that are there and have no passphrase.
	DefaultIdentityFiles []string `json:"default_identity_files,omitempty"`
	// UserSet says ssh.user was written: it then wins over the OpenSSH
	// config's User (an unwritten one, root, gives way to it).
	UserSet bool `json:"-"`
	// ConfigFile is the OpenSSH client config read for each host
	// (ssh.config_file, default ~/.ssh/config); empty when
	// ssh.use_ssh_config is false.
	ConfigFile string `json:"config_file,omitempty"`
}

// Jump is a bastion host.
type Jump struct {
	Address string `json:"address"`
	Port    int    `json:"port"`
}

// CIB is where admins' tools reach the CIB.
type CIB struct {
	Server string `json:"server"`
	Port   int    `json:"port"`
	// CloseSessions closes the established connections to Port on every
	// node after the nodes are cut (revoke, a rotation of CIB keys):
	// pacemaker-based keeps a live remote-CIB session whatever happens to
	// cib-credentials. Default true.
	CloseSessions bool `json:"close_sessions"`
	// ManagePassword (cib.password: managed, the default) makes pcmkeys
	// keep hacluster's password in shared mode: generated, stored, set on
	// every node and given to every admin with the shared key, and rotated
	// with it; "unmanaged" leaves it to the operator.
	ManagePassword bool `json:"manage_password"`
	// VerifyCommand is the client that onboard --verify and status
	// --verify run as the admin, with their env file: default
	// "cibadmin --query".
	VerifyCommand string `json:"verify_command"`
}

// Config is a loaded, validated configuration.
type Config struct {
	// Source is the file it was read from.
	Source  string          `json:"source"`
	Cluster string          `json:"cluster"`
	Store   Store           `json:"store"`
	SSH     SSH             `json:"ssh"`
	CIB     CIB             `json:"cib"`
	Hosts   []Host          `json:"hosts"`
	Policy  policies.Policy `json:"policy"`
	// AuditPath is the audit trail's file.
	AuditPath string `json:"audit_path"`
	// AuditSyslog is the local syslog socket every audit record also goes
	// to (audit.syslog: true; audit.syslog_socket, default
	// DefaultSyslogSocket); empty when records go to the file only.
	AuditSyslog string `json:"audit_syslog"`
	// Restart holds the commands rotate --restart runs after an authkey
	// rotation, per role.
	Restart Restart `json:"restart"`
}

// Restart is the restart command of each kind of node.
type Restart struct {
	Node       string `json:"node"`
	RemoteNode string `json:"remote_node"`
}

// Host returns the host named name.
func (c *Config) Host(name string) (Host, bool) {
	for _, h := range c.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// HostsWithRole returns the hosts of role r, in config order.
func (c *Config) HostsWithRole(r Role) []Host {
	var out []Host
	for _, h := range c.Hosts {
		if h.Role == r {
			out = append(out, h)
		}
	}
	return out
}
