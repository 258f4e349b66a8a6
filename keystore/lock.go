package keystore

import (
	"errors"
	"fmt"
	"time"
)

// ErrLocked is returned by Lock while another run holds the lock.
var ErrLocked = errors.New("another pcmkeys run holds the cluster's lock")

// LockedError says who holds the lock, until when. It wraps ErrLocked.
type LockedError struct {
	Holder  string
	Expires time.Time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%v: %s, until %s", ErrLocked, e.Holder, e.Expires.UTC().Format(time.RFC3339))
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lease is a held lock. Revision is the store's version of the lock
// record, so that only its holder can release it.
type Lease struct {
	Owner    string    `json:"owner"`
	Expires  time.Time `json:"expires"`
	Revision int       `json:"-"`
}

// DefaultLockTTL is how long a lock lasts unless renewed or released. A
// running workflow renews it every DefaultLockTTL/3, so a run of any
// length keeps it, and a run that crashed blocks the next one for at most
// this long.
const DefaultLockTTL = time.Minute
