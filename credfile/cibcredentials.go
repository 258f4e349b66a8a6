package credfile

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/policies"
)

// MaxFileBytes bounds what a parser reads: 4 MiB holds tens of thousands of
// identities and keeps a hostile file from exhausting memory.
const MaxFileBytes = 4 << 20

// Entry is one line of a cib-credentials file.
type Entry struct {
	Identity string
	Key      keys.Secret
}

// LineError is a problem on one line of a file. It never holds the line's
// content.
type LineError struct {
	Line   int
	Reason string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed credential file")

// ParseError lists every malformed line of a file.
type ParseError struct {
	Lines []*LineError
}

func (e *ParseError) Error() string {
	msgs := make([]string, len(e.Lines))
	for i, l := range e.Lines {
		msgs[i] = l.Error()
	}
	return "malformed cib-credentials: " + strings.Join(msgs, "; ")
}

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *ParseError) Unwrap() error { return ErrMalformed }

// ParseCIBCredentials parses a cib-credentials file. The result is sorted by
// identity. A missing final newline is accepted (GnuTLS reads the last line
// either way); everything else that GnuTLS or Pacemaker would misread is an
// error: CR characters, blank lines, comments, a line without ':', an
// invalid identity, a key that is not even-length hex of a safe size, and an
// identity listed twice.
func ParseCIBCredentials(data []byte) ([]Entry, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%w: %d bytes is more than the %d a cib-credentials file may have", ErrMalformed, len(data), MaxFileBytes)
	}
	var (
		entries []Entry
		bad     []*LineError
		seen    = map[string]int{}
	)
	lines := bytes.Split(data, []byte{'\n'})
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1] // the final LF ends the last line
	}
	for i, line := range lines {
		n := i + 1
		ident, key, reason := parseCIBLine(line)
		if reason != "" {
			bad = append(bad, &LineError{Line: n, Reason: reason})
			continue
		}
		if first, dup := seen[ident]; dup {
			bad = append(bad, &LineError{Line: n, Reason: fmt.Sprintf("same identity as line %d", first)})
			continue
		}
		seen[ident] = n
		entries = append(entries, Entry{Identity: ident, Key: key})
	}
	if len(bad) > 0 {
		return nil, &ParseError{Lines: bad}
	}
	sortEntries(entries)
	return entries, nil
}

// parseCIBLine returns the identity and key of one line, or why it is bad.
// The reason never includes the line's bytes: not even an identity, which
// might be a key pasted into the wrong place.
func parseCIBLine(line []byte) (string, keys.Secret, string) {
	switch {
	case len(line) == 0:
		return "", nil, "blank line"
	case bytes.IndexByte(line, '\r') >= 0:
		return "", nil, "carriage return (CRLF line endings break the key; use LF only)"
	case line[0] == '#':
		return "", nil, "comment line (GnuTLS does not support comments)"
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return "", nil, "no ':' between identity and key"
	}
	ident := string(line[:colon])
	if err := policies.ValidateIdentity(ident); err != nil {
		return "", nil, "invalid identity (" + identityProblem(ident) + ")"
	}
	key, reason := decodeHexKey(line[colon+1:])
	if reason != "" {
		return "", nil, reason
	}
	return ident, key, ""
}

// identityProblem says what is wrong with an identity without repeating it.
func identityProblem(ident string) string {
	switch {
	case ident == "":
		return "empty"
	case len(ident) > policies.MaxIdentityLen:
		return fmt.Sprintf("longer than %d bytes", policies.MaxIdentityLen)
	case strings.HasPrefix(ident, "#"):
		return "starts with '#'"
	}
	return "has a character other than letters, digits, '_', '.', '-' and '@'"
}

// decodeHexKey decodes a hex PSK and checks its size.
func decodeHexKey(h []byte) (keys.Secret, string) {
	if len(h) == 0 {
		return nil, "empty key"
	}
	for _, c := range h {
		if !isHex(c) {
			return nil, "key is not hexadecimal (a space, tab or other character is in it)"
		}
	}
	if len(h)%2 != 0 {
		return nil, "key has an odd number of hex digits"
	}
	key := make([]byte, len(h)/2)
	if _, err := hex.Decode(key, h); err != nil {
		return nil, "key is not hexadecimal"
	}
	if err := keys.CheckSize(keys.PSK, len(key)); err != nil {
		return nil, fmt.Sprintf("key is %d bytes (a PSK must be %d to %d)", len(key), keys.MinPSKBytes, keys.MaxPSKBytes)
	}
	return keys.Secret(key), ""
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// RenderCIBCredentials renders entries as a cib-credentials file: sorted,
// lowercase hex, one LF-terminated line each. It refuses an invalid
// identity, a key of unsafe size and a duplicate identity, so that its
// output always parses.
func RenderCIBCredentials(entries []Entry) ([]byte, error) {
	sorted := append([]Entry(nil), entries...)
	sortEntries(sorted)
	var buf bytes.Buffer
	for i, e := range sorted {
		if err := policies.ValidateIdentity(e.Identity); err != nil {
			return nil, err
		}
		if err := keys.CheckSize(keys.PSK, len(e.Key)); err != nil {
			return nil, fmt.Errorf("identity %q: %w", e.Identity, err)
		}
		if i > 0 && sorted[i-1].Identity == e.Identity {
			return nil, fmt.Errorf("identity %q listed twice", e.Identity)
		}
		buf.WriteString(e.Identity)
		buf.WriteByte(':')
		buf.WriteString(hex.EncodeToString(e.Key))
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

func sortEntries(e []Entry) {
	sort.Slice(e, func(i, j int) bool { return e[i].Identity < e[j].Identity })
}
