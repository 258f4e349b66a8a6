package policies

import (
	"errors"

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

// FieldError is a problem with one field of a Policy. Field names it as
// the config file does: "identity_mode" (a top-level key), or a key of
// the file's policy section such as "psk_bytes" or "files.authkey".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// Validate reports every problem with p at once, each a *[FieldError]
// (joined with errors.Join; one field's several problems are joined in
// its Err): the identity mode, the key sizes, and the policy of every
// file kind. The config package calls it for the policy it builds, and
// places each problem at its field's line.
func (p Policy) Validate() error {
	var errs []error
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, &FieldError{Field: field, Err: err})
		}
	}
	_, err := ParseIdentityMode(string(p.IdentityMode))
	add("identity_mode", err)
	add("psk_bytes", keys.CheckSize(keys.PSK, p.PSKBytes))
	add("authkey_bytes", keys.CheckSize(keys.Authkey, p.AuthkeyBytes))
	for _, k := range []FileKind{CIBCredentials, Authkey, ClientKey, ClientEnv, ClientPassword} {
		fp, ok := p.Files[k]
		if !ok {
			add("files."+string(k), errors.New("missing"))
			continue
		}
		add("files."+string(k), fp.Validate(k))
	}
	return errors.Join(errs...)
}

// KeySize returns how many bytes a new key of kind k has: the policy's
// sizes for PSKs and the authkey, the default for hacluster's password.
func (p Policy) KeySize(k keys.Kind) int {
	switch k {
	case keys.Authkey:
		return p.AuthkeyBytes
	case keys.Password:
		return keys.DefaultPasswordBytes
	}
	return p.PSKBytes
}

// Identity returns the PSK identity an admin uses under p's identity mode.
func (p Policy) Identity(user string) string {
	if p.IdentityMode == PerUser {
		return user
	}
	return SharedIdentity
}
