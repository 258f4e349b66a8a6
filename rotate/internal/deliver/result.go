package deliver

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pcmkeys/pcmkeys/policies"
)

// Status is how a host ended.
type Status string

// Host statuses.
const (
	StatusOK          Status = "ok"
	StatusFailed      Status = "failed"
	StatusUnreachable Status = "unreachable"
	StatusTimedOut    Status = "timed_out"
	StatusPlanned     Status = "planned"
	// StatusNotInConfig is a host named in the store's records that the
	// config no longer lists: pcmkeys cannot reach it, so what it holds is
	// a leftover.
	StatusNotInConfig Status = "not_in_config"
)

// Action is what became, or in a dry run would become, of one file.
type Action string

// File actions.
const (
	ActionWrite     Action = "write"
	ActionInSync    Action = "in_sync"
	ActionKept      Action = "kept" // exists with other content (use import or push)
	ActionWritten   Action = "written"
	ActionStaged    Action = "staged"
	ActionCommitted Action = "committed"
	ActionRemove    Action = "remove"
	ActionRemoved   Action = "removed"
	ActionFailed    Action = "failed"
	ActionNotTheirs Action = "not_theirs" // left alone: not the admin's file
	ActionLeftover  Action = "leftover"   // on a host pcmkeys cannot reach
)

// Result is what happened on one host.
type Result struct {
	Host   string `json:"host"`
	Status Status `json:"status"`
	// Error says why the host did not end ok, in words for people.
	Error string     `json:"error,omitempty"`
	Files []FileStep `json:"files"`
	// Sessions is what became of the live remote-CIB sessions on a node
	// that was cut.
	Sessions *SessionStep `json:"sessions,omitempty"`
}

// OK reports whether the host ended as asked: done, or planned in a dry run.
func (r Result) OK() bool { return r.Status == StatusOK || r.Status == StatusPlanned }

// Fail marks the host failed for err, keeping the first error it met.
func (r *Result) Fail(err error) {
	r.Status = StatusFailed
	if r.Error == "" {
		r.Error = err.Error()
	}
}

// SessionStep is the closing of a node's live remote-CIB sessions.
type SessionStep struct {
	Port int `json:"port"`
	// Closed and Remaining count established connections to Port that
	// were closed, and that were still there afterwards.
	Closed    int           `json:"closed"`
	Remaining int           `json:"remaining"`
	Action    SessionAction `json:"action"`
	// Error says what failed and the manual step that finishes the job.
	Error string `json:"error,omitempty"`
}

// SessionAction is what was done with a node's live sessions.
type SessionAction string

// Session actions.
const (
	SessionsClosed  SessionAction = "closed"
	SessionsNone    SessionAction = "none_open"
	SessionsSkipped SessionAction = "skipped"
	SessionsFailed  SessionAction = "failed"
	SessionsPlanned SessionAction = "close"
)

// FileStep is one file on one host.
type FileStep struct {
	Path  string            `json:"path"`
	Kind  policies.FileKind `json:"kind"`
	Owner string            `json:"owner"`
	Group string            `json:"group,omitempty"`
	Mode  string            `json:"mode"`
	// Fingerprint is that of the key the file holds, if it holds one.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Identities counts the lines of a cib-credentials file.
	Identities int    `json:"identities,omitempty"`
	Action     Action `json:"action"`
	// Detail is the prose behind Action, for people (why a file was kept
	// or left alone).
	Detail string `json:"detail,omitempty"`
	// Swept counts leftover temporary files removed beside it.
	Swept int `json:"swept,omitempty"`
	// Error is why this file failed; the host's other files were still
	// attempted.
	Error string `json:"error,omitempty"`
}

// ErrPartial marks a run in which some hosts failed.
var ErrPartial = errors.New("some hosts failed")

// PartialError names the hosts that failed.
type PartialError struct {
	Failed []Result
}

func (e *PartialError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d host(s) failed:", len(e.Failed))
	for _, h := range e.Failed {
		fmt.Fprintf(&b, "\n  %s: %s: %s", h.Host, strings.ReplaceAll(string(h.Status), "_", " "), h.Error)
	}
	return b.String()
}

func (e *PartialError) Unwrap() error { return ErrPartial }

// Partial returns a *PartialError naming the hosts that did not end ok,
// or nil.
func Partial(results []Result) error {
	var failed []Result
	for _, r := range results {
		if !r.OK() {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		return &PartialError{Failed: failed}
	}
	return nil
}
