package policies

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/keys"
)

// IdentityMode says whether all admins share the identity "hacluster"
// (Shared, the only mode Pacemaker 3.0.2's PAM login accepts) or each admin
// has an identity of their own (PerUser).
type IdentityMode string

const (
	Shared  IdentityMode = "shared"
	PerUser IdentityMode = "per-user"
)

// SharedIdentity is the PSK identity every admin uses in shared mode.
const SharedIdentity = "hacluster"

// ParseIdentityMode returns the mode named s.
func ParseIdentityMode(s string) (IdentityMode, error) {
	switch IdentityMode(s) {
	case Shared, PerUser:
		return IdentityMode(s), nil
	}
	return "", fmt.Errorf("identity_mode %q: want %q or %q", s, Shared, PerUser)
}

// Default rotation ages.
const (
	DefaultCIBRotateAfter     = 90 * Day
	DefaultAuthkeyRotateAfter = 365 * Day
)

// Day is 24 hours.
const Day = 24 * time.Hour

// ParseAge parses a rotation age: a number followed by d (days), h (hours)
// or w (weeks), as in "90d". Ages must be at least one hour.
func ParseAge(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("age %q: want a number and a unit, such as 90d", s)
	}
	unit := map[byte]time.Duration{'h': time.Hour, 'd': Day, 'w': 7 * Day}[s[len(s)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("age %q: unit must be h, d or w", s)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s[:len(s)-1]), 10, 32)
	if err != nil || n == 0 || n > 100*365*24 {
		return 0, fmt.Errorf("age %q: want a positive whole number before the unit", s)
	}
	return time.Duration(n) * unit, nil
}

// FormatAge renders d the way ParseAge reads it, in days where it divides.
func FormatAge(d time.Duration) string {
	if d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
}

// Rotation holds how old each kind of key may get.
type Rotation struct {
	CIB     time.Duration `json:"cib"`
	Authkey time.Duration `json:"authkey"`
}

// MaxAge returns how old a key of kind k may get before it is due for
// rotation: the authkey's age for the authkey, the CIB's for PSKs and for
// hacluster's password, which rotates with the shared key.
func (p Policy) MaxAge(k keys.Kind) time.Duration {
	if k == keys.Authkey {
		return p.RotateAfter.Authkey
	}
	return p.RotateAfter.CIB
}

// Due returns when a key of kind k made at created is due for rotation:
// it is overdue from that instant on.
func (p Policy) Due(k keys.Kind, created time.Time) time.Time {
	return created.Add(p.MaxAge(k))
}
