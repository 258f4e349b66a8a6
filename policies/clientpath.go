package policies

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on a client file path: a key-file path is typed by an operator and
// ends up in a shell file (the env file) and on a remote command line.
const (
	MaxClientPathLen      = 512
	MaxClientComponentLen = 255
)

// EnvSuffix is what an admin's env file adds to their key file's path.
const EnvSuffix = ".env"

// CheckClientKeyPath checks a key-file path an operator asked for (onboard
// --key-file): "~/REL", inside the admin's own home on each client, or an
// absolute path strictly inside one of dirs (the config's client_dirs and
// the directory of the policy's own client_key path). Whitespace, control
// characters, invalid UTF-8, "." and ".." components and overlong paths are
// refused; so is a path that leaves no room for the env file beside it.
// Where the path lands on a host (another admin's file, a server file, a
// file pcmkeys did not write) is checked on the host.
func CheckClientKeyPath(p string, dirs []string) error {
	if err := checkClientChars(p); err != nil {
		return err
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if err := checkComponents(p, rest); err != nil {
			return err
		}
		return checkComponentLens(p, rest)
	}
	if err := CheckAbsPath(p); err != nil {
		return fmt.Errorf("%w (a key file must be absolute or start with ~/ for the admin's home; absolute paths only under policy.client_dirs)", err)
	}
	if err := checkComponentLens(p, p[1:]); err != nil {
		return err
	}
	for _, d := range dirs {
		if strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
			return nil
		}
	}
	allowed := "none are configured"
	if len(dirs) > 0 {
		allowed = "allowed: " + strings.Join(dirs, ", ")
	}
	return fmt.Errorf("%w: %q is outside the admin's home (~/...) and outside policy.client_dirs (%s)", ErrBadPath, p, allowed)
}

// CheckClientDir checks a directory of policy.client_dirs: absolute, clean,
// and neither inside nor above a system directory whose files other
// programs run or trust, nor the homes of other users (/home, /root).
func CheckClientDir(d string) error {
	if err := checkClientChars(d); err != nil {
		return err
	}
	if err := CheckAbsPath(d); err != nil {
		return err
	}
	for _, sys := range []string{"/etc", "/bin", "/sbin", "/usr", "/lib", "/lib64", "/boot", "/proc", "/sys", "/dev", "/run", "/var/lib/pacemaker", "/root", "/home"} {
		if d == sys || strings.HasPrefix(sys, d+"/") || strings.HasPrefix(d, sys+"/") {
			return fmt.Errorf("%w: %s is a system directory (or holds one); client keys belong in the admin's home or a directory of their own", ErrBadPath, d)
		}
	}
	return nil
}

func checkClientChars(p string) error {
	if len(p)+len(EnvSuffix) > MaxClientPathLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadPath, MaxClientPathLen-len(EnvSuffix))
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w: not valid UTF-8", ErrBadPath)
	}
	for _, r := range p {
		if unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("%w: %q contains whitespace or a control character", ErrBadPath, p)
		}
	}
	if strings.HasSuffix(p, "/") {
		return fmt.Errorf("%w: %q names a directory, not a file", ErrBadPath, p)
	}
	return nil
}

func checkComponentLens(full, rel string) error {
	for _, c := range strings.Split(rel, "/") {
		if len(c)+len(EnvSuffix) > MaxClientComponentLen {
			return fmt.Errorf("%w: a component of %q is longer than %d bytes", ErrBadPath, full, MaxClientComponentLen-len(EnvSuffix))
		}
	}
	return nil
}

// ErrManagedPath is wrapped when a client path is that of another file
// pcmkeys manages.
var ErrManagedPath = errors.New("path of another managed file")
