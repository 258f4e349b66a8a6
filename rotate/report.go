package rotate

import (
	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// Report is what a workflow did, or with DryRun would do. It never holds
// key material: fingerprints stand in for keys.
type Report struct {
	Action      string             `json:"action"`
	DryRun      bool               `json:"dry_run"`
	Credentials []CredentialChange `json:"credentials"`
	Hosts       []HostResult       `json:"hosts"`
	// ClientEnv is the environment an onboarded admin needs.
	ClientEnv *credfile.ClientEnv `json:"client_env,omitempty"`
	// Notes are what the operator must know or do next.
	Notes []string `json:"notes,omitempty"`
	// Logins are the login checks of onboard --verify.
	Logins []LoginCheck `json:"logins,omitempty"`
	// Prechecks are what a live authkey rotation found in the cluster
	// before it touched anything.
	Prechecks []Precheck `json:"prechecks,omitempty"`
	// Timeline is a live authkey rotation's steps, with their times.
	Timeline []TimelineStep `json:"timeline,omitempty"`
	// Restart is the restart plan after an authkey rotation: each node's
	// Pacemaker version and whether it was, or must be, restarted.
	Restart []RestartStep `json:"restart,omitempty"`
}

// CredentialChange is one credential a workflow used or created.
type CredentialChange struct {
	ID          keystore.ID `json:"id"`
	Version     int         `json:"version"`
	Fingerprint string      `json:"fingerprint"`
	// Created is true when this run made the version.
	Created bool `json:"created"`
	// Destroyed is true when this run erased the credential's versions.
	Destroyed bool `json:"destroyed,omitempty"`
}

// Host statuses.
const (
	StatusOK          = "ok"
	StatusFailed      = "failed"
	StatusUnreachable = "unreachable"
	StatusTimedOut    = "timed out"
	StatusPlanned     = "planned"
)

// HostResult is what happened on one host.
type HostResult struct {
	Host   string     `json:"host"`
	Status string     `json:"status"`
	Error  string     `json:"error,omitempty"`
	Files  []FileStep `json:"files"`
	// Sessions is what became of the live remote-CIB sessions on a node
	// that was cut.
	Sessions *SessionStep `json:"sessions,omitempty"`
}

// SessionStep is the closing of a node's live remote-CIB sessions.
type SessionStep struct {
	Port int `json:"port"`
	// Closed and Remaining count established connections to Port that
	// were closed, and that were still there afterwards.
	Closed    int    `json:"closed"`
	Remaining int    `json:"remaining"`
	Action    string `json:"action"`
	// Error says what failed and the manual step that finishes the job.
	Error string `json:"error,omitempty"`
}

// Session actions.
const (
	SessionsClosed  = "closed"
	SessionsNone    = "none open"
	SessionsSkipped = "skipped"
	SessionsFailed  = "failed"
	SessionsPlanned = "close"
)

// File actions.
const (
	ActionWrite     = "write"
	ActionInSync    = "in sync"
	ActionKept      = "kept: exists with other content (use import or push)"
	ActionWritten   = "written"
	ActionStaged    = "staged"
	ActionCommitted = "committed"
	ActionRemove    = "remove"
	ActionRemoved   = "removed"
	ActionFailed    = "failed"
	ActionNotTheirs = "left alone: not the admin's file"
	ActionLeftover  = "left behind"
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
	Action     string `json:"action"`
	// Swept counts leftover temporary files removed beside it.
	Swept int `json:"swept,omitempty"`
	// Error is why this file failed; the host's other files were still
	// attempted.
	Error string `json:"error,omitempty"`
}
