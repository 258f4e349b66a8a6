package keystore

import (
	"errors"
	"time"
)

// ErrLocked is returned by Lock while another run holds the lock.
var ErrLocked = errors.New("another pcmkeys run holds the cluster's lock")

// Lease is a held lock. Revision is the store's version of the lock
// record, so that only its holder can release it.
type Lease struct {
	Owner    string    `json:"owner"`
	Expires  time.Time `json:"expires"`
	Revision int       `json:"-"`
}

// DefaultLockTTL is how long a lock lasts unless released: long enough for
// a rotation of thousands of hosts, short enough that a crashed run does
// not block the next one for long.
const DefaultLockTTL = 15 * time.Minute
