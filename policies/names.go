package policies

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrBadName is wrapped by every name validation error.
var ErrBadName = errors.New("invalid name")

// Name length limits.
const (
	MaxIdentityLen = 64
	MaxUserLen     = 32 // useradd's limit on Linux
	MaxHostLen     = 253
)

// ValidateIdentity checks a TLS-PSK identity as it will appear at the start
// of a cib-credentials line, in a store path and in a Vault policy path: 1
// to 64 characters from letters, digits, '_', '.', '-' and '@', not "." or
// "..". That leaves out ':', whitespace, control characters, a leading
// '#', '/', and Vault's glob characters '*' and '+'.
func ValidateIdentity(s string) error {
	if err := validateToken("identity", s, MaxIdentityLen); err != nil {
		return err
	}
	for i, r := range s {
		if !(r == '_' || r == '.' || r == '-' || r == '@' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return fmt.Errorf("%w: identity %s: character %q at position %d is not allowed (use letters, digits, '_', '.', '-', '@')",
				ErrBadName, quoteName(s), r, i+1)
		}
	}
	return nil
}

// ValidateUser checks a Unix user name as useradd accepts it by default and
// as a portable name must be: a letter or '_' first, then letters, digits,
// '_', '.' or '-', at most 32 characters. A user name is also used as the
// PSK identity in per-user mode, so it passes [ValidateIdentity] too.
func ValidateUser(s string) error {
	if err := validateToken("user name", s, MaxUserLen); err != nil {
		return err
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if i > 0 {
			ok = ok || r == '.' || r == '-' || (r >= '0' && r <= '9')
		}
		if !ok {
			return fmt.Errorf("%w: user name %s: character %q at position %d is not allowed (use letters, digits, '_', '.', '-'; a letter or '_' first)",
				ErrBadName, quoteName(s), r, i+1)
		}
	}
	return nil
}

// ValidateHost checks a host name as it appears in the config and on the
// command line: letters, digits, '.', '-' and '_', starting with a letter or
// digit, at most 253 characters.
func ValidateHost(s string) error {
	if err := validateToken("host name", s, MaxHostLen); err != nil {
		return err
	}
	for i, r := range s {
		ok := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if i > 0 {
			ok = ok || r == '.' || r == '-' || r == '_'
		}
		if !ok {
			return fmt.Errorf("%w: host name %s: character %q at position %d is not allowed",
				ErrBadName, quoteName(s), r, i+1)
		}
	}
	return nil
}

// validateToken applies the rules shared by every kind of name.
func validateToken(what, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s is empty", ErrBadName, what)
	case len(s) > max:
		return fmt.Errorf("%w: %s %s is %d bytes long (at most %d)", ErrBadName, what, quoteName(s), len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s %s is not valid UTF-8", ErrBadName, what, quoteName(s))
	case strings.HasPrefix(s, "#"):
		return fmt.Errorf("%w: %s %s starts with '#', which would make it a comment", ErrBadName, what, quoteName(s))
	case s == "." || s == "..":
		return fmt.Errorf("%w: %s %s is a path component", ErrBadName, what, quoteName(s))
	}
	for i, r := range s {
		switch {
		case r == ':':
			return fmt.Errorf("%w: %s %s contains ':' at position %d, which separates identity from key", ErrBadName, what, quoteName(s), i+1)
		case r == '/' || r == '\\':
			return fmt.Errorf("%w: %s %s contains %q at position %d", ErrBadName, what, quoteName(s), r, i+1)
		case r < 0x21 || r == 0x7f:
			return fmt.Errorf("%w: %s %s contains whitespace or a control character at position %d", ErrBadName, what, quoteName(s), i+1)
		case r > 0x7e:
			return fmt.Errorf("%w: %s %s contains the non-ASCII character %q at position %d", ErrBadName, what, quoteName(s), r, i+1)
		}
	}
	return nil
}

// quoteName quotes a name for an error message, escaping control characters
// and cutting very long names so an error never floods a terminal.
func quoteName(s string) string {
	const show = 40
	if len(s) > show {
		return fmt.Sprintf("%q…", s[:show])
	}
	return fmt.Sprintf("%q", s)
}
