// Package audit keeps pcmkeys's audit trail: one JSON line per action,
// appended to a file that only grows. A record names who did what to which
// credential versions, by fingerprint, and on which hosts it worked or
// failed. It never holds key material; [Record] has no field that could.
//
// The file is opened with O_APPEND for each record, written with one
// write(2) and fsynced, so concurrent pcmkeys processes on one machine do
// not interleave lines, and a record that was reported written survives a
// crash.
//
// With [Log.WithSyslog] every record also goes to the local syslog socket
// as one line (facility authpriv, tag pcmkeys), so central log management
// sees it; a record syslog did not take is an error like one the file did
// not take.
package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Record is one action.
type Record struct {
	Time     time.Time `json:"time"`
	Operator string    `json:"operator"`
	// VaultIdentity is the Vault token's display name, when the store is
	// Vault.
	VaultIdentity string       `json:"vault_identity,omitempty"`
	Action        string       `json:"action"`
	Args          []string     `json:"args,omitempty"` // user and host names, never keys
	Credentials   []Credential `json:"credentials,omitempty"`
	HostsOK       []string     `json:"hosts_ok,omitempty"`
	HostsFailed   []HostError  `json:"hosts_failed,omitempty"`
	// Steps are a live rotation's prechecks, plan and timeline, one line
	// each ("+12.3s node1: restart: ok").
	Steps  []string `json:"steps,omitempty"`
	Result string   `json:"result"` // ok, partial, failed
	Error  string   `json:"error,omitempty"`
}

// Credential is a credential version an action used or made.
type Credential struct {
	ID          string `json:"id"`
	Version     int    `json:"version"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Change      string `json:"change"` // created, used, destroyed, removed
}

// HostError is a host an action could not finish on.
type HostError struct {
	Host  string `json:"host"`
	Error string `json:"error"`
}

// Log is an audit trail file, and optionally a syslog socket every
// record also goes to ([Log.WithSyslog]).
type Log struct {
	path          string
	syslog        string
	syslogTimeout time.Duration
}

// Open returns the log at path; the file and its directory (0700) are made
// on the first Append.
func Open(path string) *Log { return &Log{path: path} }

// Path is the file's path.
func (l *Log) Path() string { return l.path }

// Append writes r as one line to the file and, with [Log.WithSyslog], to
// syslog. It tries both; the error names each that did not take the
// record.
func (l *Log) Append(r Record) error {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	err = l.appendFile(append(line, '\n'))
	if l.syslog != "" {
		err = errors.Join(err, l.sendSyslog(r, line))
	}
	return err
}

// appendFile appends line with one write and fsyncs it.
func (l *Log) appendFile(line []byte) error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		return fmt.Errorf("audit %s: %w", l.path, err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("audit %s: %w", l.path, err)
	}
	defer f.Close()
	if _, err := f.Write(line); err != nil {
		return fmt.Errorf("audit %s: %w", l.path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("audit %s: %w", l.path, err)
	}
	return nil
}

// Read returns every record, oldest first. A missing file is an empty
// trail; a line that does not parse is an error naming its number.
func (l *Log) Read() ([]Record, error) {
	f, err := os.OpenFile(l.path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", l.path, err)
	}
	defer f.Close()
	return read(f, l.path)
}

func read(r io.Reader, path string) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return out, fmt.Errorf("audit %s line %d: not a record", path, n)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}
