// Package keys generates the kinds of secret pcmkeys manages and gives
// every secret a fingerprint that can stand in for it in logs and output.
//
// # Secrets
//
// A [Secret] is key material. Its String, GoString, Format, slog LogValue and
// MarshalJSON methods all print a redaction marker, so a secret that reaches a
// log line, an error message or a JSON document by mistake shows as
// "[redacted]" instead of leaking. Code that must emit the key itself (a key
// file, the key store) uses [Secret.Bytes] explicitly.
//
// # Generation
//
// [Generate] draws bytes from crypto/rand only. Sizes are checked against
// the bounds in this package: a CIB PSK is 16 to 512 bytes (GnuTLS's psktool
// accepts up to 512; 32 is the default), a Pacemaker Remote authkey 32 to
// 65536 bytes (4096 is the default, as in Pacemaker's documentation).
//
// # Fingerprints
//
// [Fingerprint] is "SHA256:" followed by the unpadded base64 of the SHA-256
// of the key bytes, the form OpenSSH uses for host keys. It identifies a key
// version without revealing it.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// Kind names a kind of key.
type Kind string

const (
	// PSK is a CIB TLS-PSK key, written as hex.
	PSK Kind = "psk"
	// Authkey is a Pacemaker Remote authkey, written as raw bytes.
	Authkey Kind = "authkey"
	// Password is a login password (hacluster's, for the PAM login that
	// follows the remote CIB's TLS-PSK handshake), written as the hex of
	// its random bytes: printable, no ':' or newline, safe for chpasswd and
	// for CIB_passwd.
	Password Kind = "password"
)

// Size bounds, in bytes.
const (
	DefaultPSKBytes     = 32
	MinPSKBytes         = 16
	MaxPSKBytes         = 512
	DefaultAuthkeyBytes = 4096
	MinAuthkeyBytes     = 32
	MaxAuthkeyBytes     = 65536
	// A password of 24 random bytes is 48 hex characters (192 bits).
	DefaultPasswordBytes = 24
	MinPasswordBytes     = 16
	MaxPasswordBytes     = 64
)

// ErrSize reports a key size outside the bounds for its kind.
var ErrSize = errors.New("key size out of range")

// ParseKind returns the Kind named s.
func ParseKind(s string) (Kind, error) {
	switch Kind(s) {
	case PSK, Authkey, Password:
		return Kind(s), nil
	}
	return "", fmt.Errorf("unknown key kind %q (want psk, authkey or password)", s)
}

// Bounds returns the smallest, default and largest size of a key of kind k.
func Bounds(k Kind) (min, def, max int) {
	switch k {
	case Authkey:
		return MinAuthkeyBytes, DefaultAuthkeyBytes, MaxAuthkeyBytes
	case Password:
		return MinPasswordBytes, DefaultPasswordBytes, MaxPasswordBytes
	}
	return MinPSKBytes, DefaultPSKBytes, MaxPSKBytes
}

// CheckSize returns an error wrapping [ErrSize] when n bytes is not a safe
// size for a key of kind k.
func CheckSize(k Kind, n int) error {
	lo, _, hi := Bounds(k)
	if n < lo || n > hi {
		return fmt.Errorf("%w: a %s must be %d to %d bytes, got %d", ErrSize, k, lo, hi, n)
	}
	return nil
}

// Generate returns n random bytes from crypto/rand for a key of kind k.
func Generate(k Kind, n int) (Secret, error) {
	if err := CheckSize(k, n); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("read random bytes: %w", err)
	}
	return Secret(b), nil
}

// Secret is key material. It never formats as its content; see the package
// documentation.
type Secret []byte

const redacted = "[redacted]"

// Bytes returns the key material itself.
func (s Secret) Bytes() []byte { return []byte(s) }

// PasswordText returns a password secret as the text a login takes: the
// hex of its bytes. It is key material.
func (s Secret) PasswordText() []byte {
	out := make([]byte, hex.EncodedLen(len(s)))
	hex.Encode(out, s)
	return out
}

// Fingerprint returns the key's fingerprint.
func (s Secret) Fingerprint() string { return Fingerprint(s) }

// String implements fmt.Stringer with a redaction marker.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer with a redaction marker.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb, %x and %v included,
// prints the redaction marker.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer with a redaction marker.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON refuses: a secret is never part of a JSON document by accident.
func (s Secret) MarshalJSON() ([]byte, error) {
	return nil, errors.New("keys: refusing to marshal key material to JSON")
}

// MarshalText refuses for the same reason as MarshalJSON.
func (s Secret) MarshalText() ([]byte, error) {
	return nil, errors.New("keys: refusing to marshal key material to text")
}

// Equal reports whether two secrets hold the same bytes.
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare(s, o) == 1
}

// Fingerprint returns "SHA256:" and the unpadded base64 of SHA-256(b).
func Fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
