package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pcmkeys/pcmkeys/policies"
)

// Where pcmkeys finds OpenSSH's own files.
const (
	// DefaultSSHConfig is the OpenSSH client config read unless
	// ssh.use_ssh_config is false.
	DefaultSSHConfig = "~/.ssh/config"
	// GlobalKnownHosts is read besides ssh.known_hosts, as ssh does.
	GlobalKnownHosts = "/etc/ssh/ssh_known_hosts"
)

func (v *validator) ssh(s sshFile) SSH {
	out := SSH{User: s.User, UserSet: s.User != "", Become: s.Become, ConnectTimeout: s.ConnectTimeout.d, CommandTimeout: s.CommandTimeout.d}
	if out.User == "" {
		out.User = DefaultSSHUser
	}
	if err := policies.ValidateUser(out.User); err != nil {
		v.add(p("ssh", "user"), err)
	}
	switch out.Become {
	case "":
		out.Become = "none"
	case "none", "sudo":
	default:
		v.add(p("ssh", "become"), fmt.Errorf(`%q: want "none" or "sudo"`, out.Become))
	}
	if out.User != "root" && out.Become == "none" {
		v.add(p("ssh", "become"), fmt.Errorf(`user %q is not root: set become: sudo (passwordless sudo)`, out.User))
	}
	kh := s.KnownHosts
	if kh == "" {
		kh = DefaultKnownHosts
	}
	out.KnownHosts = v.localPath(p("ssh", "known_hosts"), kh)
	for i, f := range s.IdentityFiles {
		out.IdentityFiles = append(out.IdentityFiles, v.localPath(p("ssh", "identity_files", i), f))
	}
	v.openSSH(s, &out)
	if out.ConnectTimeout == 0 {
		out.ConnectTimeout = DefaultConnectTimeout
	}
	if out.CommandTimeout == 0 {
		out.CommandTimeout = DefaultCommandTimeout
	}
	if s.Jump != nil {
		out.Jump = &Jump{Address: s.Jump.Address, Port: s.Jump.Port}
		if out.Jump.Port == 0 {
			out.Jump.Port = DefaultSSHPort
		}
		if err := checkAddress(out.Jump.Address); err != nil {
			v.add(p("ssh", "jump", "address"), err)
		}
		if out.Jump.Port < 1 || out.Jump.Port > 65535 {
			v.add(p("ssh", "jump", "port"), fmt.Errorf("%d is not a TCP port", out.Jump.Port))
		}
	}
	return out
}

// openSSH fills in what pcmkeys takes from OpenSSH's own files: the known
// hosts files besides ssh.known_hosts, the default identities when none
// are written, and the client config (unless use_ssh_config is false).
// Without a home, only what needs none.
func (v *validator) openSSH(s sshFile, out *SSH) {
	home, herr := os.UserHomeDir()
	extra := []string{GlobalKnownHosts}
	if herr == nil {
		extra = append([]string{filepath.Join(home, ".ssh", "known_hosts")}, extra...)
	}
	for _, f := range extra {
		if f != out.KnownHosts {
			out.ExtraKnownHosts = append(out.ExtraKnownHosts, f)
		}
	}
	if len(s.IdentityFiles) == 0 && herr == nil {
		for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			out.DefaultIdentityFiles = append(out.DefaultIdentityFiles, filepath.Join(home, ".ssh", k))
		}
	}
	switch {
	case s.UseSSHConfig != nil && !*s.UseSSHConfig:
		if s.ConfigFile != "" {
			v.add(p("ssh", "config_file"), errors.New("is set, but use_ssh_config is false"))
		}
	case s.ConfigFile != "":
		out.ConfigFile = v.localPath(p("ssh", "config_file"), s.ConfigFile)
	case herr == nil:
		out.ConfigFile = filepath.Join(home, ".ssh", "config")
	}
}

// hostUser checks a host's own login user (user:).
func (v *validator) hostUser(at []any, h hostFile, become string) string {
	if h.Local {
		if h.User != "" {
			v.add(at, errors.New("a local host is written directly: user does not apply"))
		}
		return ""
	}
	if h.User == "" {
		return ""
	}
	if err := policies.ValidateUser(h.User); err != nil {
		v.add(at, err)
		return ""
	}
	if h.User != "root" && become != "sudo" {
		v.add(at, fmt.Errorf(`user %q is not root: set ssh.become: sudo (passwordless sudo)`, h.User))
	}
	return h.User
}

// Login is what the config wrote of how to log in to h, which wins over
// ~/.ssh/config: an address other than its name, a port, a user (its own,
// else a written ssh.user). A zero value was not written.
func (c *Config) Login(h Host) (address string, port int, user string) {
	if h.Address != h.Name {
		address = h.Address
	}
	if h.PortSet {
		port = h.Port
	}
	user = h.User
	if user == "" && c.SSH.UserSet {
		user = c.SSH.User
	}
	return address, port, user
}
