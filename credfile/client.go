package credfile

import (
	"encoding/hex"
	"fmt"

	"github.com/pcmkeys/pcmkeys/keys"
)

// RenderClientKey renders an admin's client key file: the bare lowercase
// hex key, with no newline.
func RenderClientKey(key keys.Secret) ([]byte, error) {
	if err := keys.CheckSize(keys.PSK, len(key)); err != nil {
		return nil, err
	}
	return []byte(hex.EncodeToString(key)), nil
}

// ParseClientKey parses a client key file. Anything besides the hex key —
// a newline included — is an error, since Pacemaker would read it as part
// of the key.
func ParseClientKey(data []byte) (keys.Secret, error) {
	if len(data) > 2*keys.MaxPSKBytes+2 {
		return nil, fmt.Errorf("%w: client key file is %d bytes, longer than any PSK", ErrMalformed, len(data))
	}
	for i, c := range data {
		if c == '\n' || c == '\r' {
			return nil, fmt.Errorf("%w: client key file has a line ending at byte %d; it must hold the bare hex key only", ErrMalformed, i+1)
		}
	}
	key, reason := decodeHexKey(data)
	if reason != "" {
		return nil, fmt.Errorf("%w: client key file: %s", ErrMalformed, reason)
	}
	return key, nil
}

// RenderAuthkey returns the authkey's exact bytes after checking its size.
func RenderAuthkey(key keys.Secret) ([]byte, error) {
	if err := keys.CheckSize(keys.Authkey, len(key)); err != nil {
		return nil, err
	}
	return append([]byte(nil), key...), nil
}

// ParseAuthkey takes an authkey file's bytes as the key, exactly, after
// checking the size.
func ParseAuthkey(data []byte) (keys.Secret, error) {
	if err := keys.CheckSize(keys.Authkey, len(data)); err != nil {
		return nil, fmt.Errorf("%w: authkey: %w", ErrMalformed, err)
	}
	return keys.Secret(append([]byte(nil), data...)), nil
}
