package rotate

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// hacluster's password.
//
// After the TLS-PSK handshake, pacemaker-based 3.0.2 runs a PAM login for
// CIB_user with CIB_passwd, and with stock PAM only hacluster can log in:
// in shared mode every admin needs hacluster's password as well as the
// key. With cib.password: managed (the default) pcmkeys keeps that
// password as a credential of its own (password/hacluster): generated
// from crypto/rand, versioned in the store, set on every full node with
// chpasswd reading its stdin, recorded there by fingerprint in
// NodePasswordMarkerPath, given to each admin as a 0600 file that the env
// file reads into CIB_passwd, and rotated with the shared key (rotate
// --cib, revoke).

// sharedPasswordID is hacluster's password in the store.
var sharedPasswordID = keystore.Password(policies.SharedIdentity)

// managesPassword reports whether pcmkeys keeps hacluster's password.
func (e *Env) managesPassword() bool {
	return e.Config.Policy.IdentityMode == policies.Shared && e.Config.CIB.ManagePassword
}

// currentPassword returns hacluster's password from the store, or nil
// when pcmkeys does not manage it or the store has none yet (a store from
// before passwords were managed: init or rotate --cib creates it).
func (e *Env) currentPassword(ctx context.Context) (keystore.Credential, error) {
	if !e.managesPassword() {
		return keystore.Credential{}, nil
	}
	cred, err := e.Store.Get(ctx, sharedPasswordID)
	if errors.Is(err, keystore.ErrNotFound) || errors.Is(err, keystore.ErrDestroyed) {
		return keystore.Credential{}, nil
	}
	if err != nil {
		return keystore.Credential{}, fmt.Errorf("hacluster's password: %w", err)
	}
	return cred, nil
}

// passwordPath is the password file of a client entry: the record's, or
// for a record written before pcmkeys managed the password, the one a new
// onboard would use.
func (e *Env) passwordPath(c keystore.Client) string {
	if c.PasswordFile != "" {
		return c.PasswordFile
	}
	return e.derivedPasswordPath(c.KeyFile)
}

func (e *Env) derivedPasswordPath(keyFile string) string {
	files := e.Config.Policy.Files
	if keyFile == files[policies.ClientKey].Path {
		return files[policies.ClientPassword].Path
	}
	return keyFile + ".passwd"
}

// nodePasswordWanted is hacluster's password on a node: chpasswd, then
// the marker file that records its fingerprint (see setNodePassword).
func (e *Env) nodePasswordWanted(pw keys.Secret, mode deliver.Mode) deliver.Want {
	marker := []byte(policies.SharedIdentity + " " + pw.Fingerprint() + "\n")
	w := deliver.NewWant(distribute.File{Path: policies.NodePasswordMarkerPath, Content: marker, Owner: "root", Mode: 0o600},
		policies.NodePassword, pw.Fingerprint(), 0, mode)
	w.Password = pw
	return w
}

// runsPassword reports whether hacluster's password is set on h: full
// nodes that are running systems (not images under a root prefix).
func runsPassword(h config.Host) bool { return h.Role.Holds(policies.NodePassword) && h.Root == "" }

// withNodePassword adds hacluster's password to the deliveries of every
// full node that runs a system.
func (e *Env) withNodePassword(ds []deliver.Host, pw keys.Secret, mode deliver.Mode) []deliver.Host {
	if pw == nil {
		return ds
	}
	for i := range ds {
		if runsPassword(ds[i].Host) {
			ds[i].Files = append(ds[i].Files, e.nodePasswordWanted(pw, mode))
		}
	}
	return ds
}
