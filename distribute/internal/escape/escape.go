// Package escape makes text that comes from a host safe to show. Text a
// host sends — a remote command's stderr and output, user and group names
// and home directories from its account databases, an SSH server's
// messages — is escaped where it enters pcmkeys (package distribute), so
// that no report, error, JSON document or audit record shows it raw: a
// hostile host can neither set the operator's window title, colour a fake
// "all good", move the cursor, nor start a line of its own.
package escape

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// String returns s with every control character (C0, DEL and C1), invalid
// UTF-8 byte and other non-printable rune (bidirectional overrides, for
// one) written as a Go escape: \x1b, \r, \n, \u009b, \u202e. Printable
// text, spaces and backslashes included, stays as it is, so escaping twice
// changes nothing.
func String(s string) string { return escape(s, false) }

// Lines is String keeping newlines and tabs: a command's output, which
// callers read line by line.
func Lines(s string) string { return escape(s, true) }

func escape(s string, lines bool) string {
	keep := func(r rune) bool {
		return strconv.IsPrint(r) || (lines && (r == '\n' || r == '\t'))
	}
	clean := true
	for i, r := range s {
		if !keep(r) || (r == utf8.RuneError && !validAt(s, i)) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keep(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// validAt reports whether the U+FFFD at s[i] is encoded (not a bad byte).
func validAt(s string, i int) bool {
	_, n := utf8.DecodeRuneInString(s[i:])
	return n > 1
}

// escapedError shows an error that may hold a host's words with those
// escaped; errors.Is and errors.As see the error itself.
type escapedError struct{ err error }

func (e escapedError) Error() string { return String(e.err.Error()) }
func (e escapedError) Unwrap() error { return e.err }

// Err wraps err, if any, so that its text is escaped.
func Err(err error) error {
	if err == nil {
		return nil
	}
	return escapedError{err}
}
