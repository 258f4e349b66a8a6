package policies

import (
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/keys"
)

// Policy is everything a cluster's config says about its keys and files.
type Policy struct {
	IdentityMode IdentityMode            `json:"identity_mode"`
	PSKBytes     int                     `json:"psk_bytes"`
	AuthkeyBytes int                     `json:"authkey_bytes"`
	RotateAfter  Rotation                `json:"rotate_after"`
	Files        map[FileKind]FilePolicy `json:"files"`
	// ClientDirs are the directories outside admins' homes where an
	// onboard's --key-file may put a client key (config policy.client_dirs).
	ClientDirs []string `json:"client_dirs,omitempty"`
}

// Default returns the documented defaults.
func Default() Policy {
	return Policy{
		IdentityMode: Shared,
		PSKBytes:     keys.DefaultPSKBytes,
		AuthkeyBytes: keys.DefaultAuthkeyBytes,
		RotateAfter:  Rotation{CIB: DefaultCIBRotateAfter, Authkey: DefaultAuthkeyRotateAfter},
		Files:        DefaultFiles(),
	}
}

// Validate reports every problem with p at once.
func (p Policy) Validate() error {
	var errs []error
	if _, err := ParseIdentityMode(string(p.IdentityMode)); err != nil {
		errs = append(errs, err)
	}
	if err := keys.CheckSize(keys.PSK, p.PSKBytes); err != nil {
		errs = append(errs, fmt.Errorf("psk_bytes: %w", err))
	}
	if err := keys.CheckSize(keys.Authkey, p.AuthkeyBytes); err != nil {
		errs = append(errs, fmt.Errorf("authkey_bytes: %w", err))
	}
	for _, k := range []FileKind{CIBCredentials, Authkey, ClientKey, ClientEnv, ClientPassword} {
		fp, ok := p.Files[k]
		if !ok {
			errs = append(errs, fmt.Errorf("files.%s: missing", k))
			continue
		}
		if err := fp.Validate(k); err != nil {
			errs = append(errs, fmt.Errorf("files.%s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// Identity returns the PSK identity an admin uses under p's identity mode.
func (p Policy) Identity(user string) string {
	if p.IdentityMode == PerUser {
		return user
	}
	return SharedIdentity
}
