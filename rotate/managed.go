package rotate

import (
	"context"
	"fmt"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// ManagedFile is a file pcmkeys keeps on a host.
type ManagedFile struct {
	Host string `json:"host"`
	// InConfig is false for a client host the store records an admin's
	// files on but the config no longer lists.
	InConfig bool `json:"in_config"`
	// Path is the host's own path (its root prefix, if any, not applied);
	// a "~/" path is in User's home.
	Path string            `json:"path"`
	User string            `json:"user,omitempty"`
	Kind policies.FileKind `json:"kind"`
}

// Markers pcmkeys keeps on full nodes besides the policy's files.
const (
	// LiveRotationMarkerPath records, while a live authkey rotation runs,
	// maintenance-mode's earlier value (see rotate_live_resume.go).
	LiveRotationMarkerPath = "/etc/pacemaker/pcmkeys-live-rotation"
	// kindMarker is the kind of a marker file.
	kindMarker policies.FileKind = "marker"
)

// ManagedFiles lists every file pcmkeys keeps: on each host of the config
// the server files its role holds, hacluster's password marker (shared
// mode, managed password) and the live rotation's marker on full nodes;
// on each client host the key, env and password files of every admin the
// store records there whose revocation has not finished. It reads the
// admins' records and contacts no host.
func ManagedFiles(ctx context.Context, e *Env) ([]ManagedFile, error) {
	admins, err := e.Store.ListAdmins(ctx)
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	files := e.Config.Policy.Files
	var out []ManagedFile
	for _, h := range e.Config.Hosts {
		add := func(p string, k policies.FileKind) {
			out = append(out, ManagedFile{Host: h.Name, InConfig: true, Path: p, Kind: k})
		}
		for _, k := range []policies.FileKind{policies.CIBCredentials, policies.Authkey} {
			if h.Role.Holds(k) {
				add(files[k].Path, k)
			}
		}
		if h.Role == config.RoleNode {
			if e.managesPassword() {
				add(policies.NodePasswordMarkerPath, policies.NodePassword)
			}
			add(LiveRotationMarkerPath, kindMarker)
		}
	}
	for _, a := range admins {
		if a.RevocationFinished() {
			continue // nothing of theirs is left anywhere
		}
		for _, c := range a.Clients {
			_, inConfig := e.Config.Host(c.Host)
			for _, f := range e.clientFiles(c) {
				out = append(out, ManagedFile{Host: c.Host, InConfig: inConfig, Path: f.path, User: a.User, Kind: f.kind})
			}
		}
	}
	return out, nil
}

// clientFile is one file of an admin's on a client host.
type clientFile struct {
	path string
	kind policies.FileKind
}

// clientFiles are the files of a client entry as the store records them:
// the key, the env file and, when pcmkeys manages hacluster's password,
// the password file.
func (e *Env) clientFiles(c keystore.Client) []clientFile {
	out := []clientFile{{c.KeyFile, policies.ClientKey}, {c.EnvFile, policies.ClientEnv}}
	if e.managesPassword() || c.PasswordFile != "" {
		out = append(out, clientFile{e.passwordPath(c), policies.ClientPassword})
	}
	return out
}
