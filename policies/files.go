package policies

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// FileKind names one of the files pcmkeys writes.
type FileKind string

const (
	// CIBCredentials is the server-side PSK file on every full cluster node.
	CIBCredentials FileKind = "cib_credentials"
	// Authkey is the Pacemaker Remote key on every node and remote node.
	Authkey FileKind = "authkey"
	// ClientKey is an admin's bare hex key, named by CIB_key_file.
	ClientKey FileKind = "client_key"
	// ClientEnv is the shell file with the CIB_* variables beside it.
	ClientEnv FileKind = "client_env"
	// ClientPassword is the admin's copy of hacluster's password (shared
	// mode, cib.password: managed), read by the env file into CIB_passwd.
	ClientPassword FileKind = "client_password"
	// NodePassword is hacluster's password on a full node, set with
	// chpasswd; the file pcmkeys keeps for it (NodePasswordMarkerPath)
	// holds the fingerprint of the password it set, never the password.
	NodePassword FileKind = "hacluster_password"
)

// NodePasswordMarkerPath is where a node records which password pcmkeys
// gave hacluster: "IDENTITY FINGERPRINT", root-owned, 0600.
const NodePasswordMarkerPath = "/etc/pacemaker/pcmkeys-password"

// FilePolicy says where a file lives and who owns it. For client files the
// owner and group are empty: they belong to the admin who holds them, and
// Path may start with "~/" for that admin's home directory.
type FilePolicy struct {
	Path  string      `json:"path"`
	Owner string      `json:"owner,omitempty"`
	Group string      `json:"group,omitempty"`
	Mode  fs.FileMode `json:"mode"`
}

// ErrUnsafeMode is wrapped when a policy would loosen a secret file's mode.
var ErrUnsafeMode = errors.New("unsafe file mode")

// Defaults from Pacemaker: its own paths, owner and group for these files
// (docs/design.md, "Pacemaker facts").
const (
	DefaultCIBCredentialsPath = "/etc/pacemaker/cib-credentials"
	DefaultAuthkeyPath        = "/etc/pacemaker/authkey"
	DefaultClientKeyPath      = "~/.pcmkeys/{cluster}.key"
	DefaultClientEnvPath      = "~/.pcmkeys/{cluster}.env"
	DefaultClientPasswordPath = "~/.pcmkeys/{cluster}.passwd"
	DefaultServerOwner        = "hacluster"
	DefaultServerGroup        = "haclient"
	DefaultMode               = fs.FileMode(0o600)
)

// DefaultFiles returns the default policy for every file kind.
func DefaultFiles() map[FileKind]FilePolicy {
	return map[FileKind]FilePolicy{
		CIBCredentials: {Path: DefaultCIBCredentialsPath, Owner: DefaultServerOwner, Group: DefaultServerGroup, Mode: DefaultMode},
		Authkey:        {Path: DefaultAuthkeyPath, Owner: DefaultServerOwner, Group: DefaultServerGroup, Mode: DefaultMode},
		ClientKey:      {Path: DefaultClientKeyPath, Mode: DefaultMode},
		ClientEnv:      {Path: DefaultClientEnvPath, Mode: DefaultMode},
		ClientPassword: {Path: DefaultClientPasswordPath, Mode: DefaultMode},
	}
}

// CheckMode refuses a mode for a secret file that gives group or other any
// permission, that has setuid, setgid or sticky bits, or that the owner could
// not read.
func CheckMode(m fs.FileMode) error {
	switch {
	case m&^fs.ModePerm != 0 || m&0o7000 != 0:
		return fmt.Errorf("%w: %04o has setuid, setgid or sticky bits; a secret file is a plain file (use 0600 or 0400)", ErrUnsafeMode, UnixMode(m))
	case m&0o077 != 0:
		return fmt.Errorf("%w: %04o gives group or other access to a secret (use 0600 or 0400)", ErrUnsafeMode, uint32(m.Perm()))
	case m&0o400 == 0:
		return fmt.Errorf("%w: %04o does not let the owner read the file (use 0600 or 0400)", ErrUnsafeMode, uint32(m.Perm()))
	}
	return nil
}

// UnixMode returns m as the octal bits chmod takes (setuid 04000, setgid
// 02000, sticky 01000), for messages.
func UnixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// Validate checks the policy of a file of kind k.
func (p FilePolicy) Validate(k FileKind) error {
	var errs []error
	if err := CheckMode(p.Mode); err != nil {
		errs = append(errs, err)
	}
	client := k == ClientKey || k == ClientEnv || k == ClientPassword
	if err := checkPolicyPath(p.Path, client); err != nil {
		errs = append(errs, err)
	}
	if client {
		if p.Owner != "" || p.Group != "" {
			errs = append(errs, errors.New("owner and group of a client file are the admin's own; leave them unset"))
		}
	} else {
		if err := ValidateUser(p.Owner); err != nil {
			errs = append(errs, fmt.Errorf("owner: %w", err))
		}
		if err := ValidateUser(p.Group); err != nil {
			errs = append(errs, fmt.Errorf("group: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ErrBadPath is wrapped by path validation errors.
var ErrBadPath = errors.New("invalid path")

// CheckAbsPath requires an absolute, clean path with no "..", no empty or
// "." components, no control characters, that is not "/" itself.
func CheckAbsPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: %q is not absolute", ErrBadPath, p)
	}
	return checkComponents(p, p[1:])
}

func checkPolicyPath(p string, client bool) error {
	if client && strings.HasPrefix(p, "~/") {
		return checkComponents(p, p[2:])
	}
	if client && !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: %q must be absolute or start with ~/", ErrBadPath, p)
	}
	return CheckAbsPath(p)
}

func checkComponents(full, rel string) error {
	if rel == "" {
		return fmt.Errorf("%w: %q names no file", ErrBadPath, full)
	}
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "", ".", "..":
			return fmt.Errorf("%w: %q has an empty, '.' or '..' component", ErrBadPath, full)
		}
		for _, r := range c {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("%w: %q contains a control character", ErrBadPath, full)
			}
		}
	}
	if path.Clean(full) != full && !strings.HasPrefix(full, "~/") {
		return fmt.Errorf("%w: %q is not clean", ErrBadPath, full)
	}
	return nil
}
