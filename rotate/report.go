package rotate

import (
	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/keystore"
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
