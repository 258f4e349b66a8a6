// Package keystore defines where pcmkeys keeps keys: the [Store] interface
// that the Vault KV v2 store and the embedded file store both implement,
// and the records they hold.
//
// # What a store holds
//
// A credential ([ID]) is "cib/IDENTITY" for a CIB PSK or "authkey" for the
// Pacemaker Remote key. Each write makes a new [Version]; the version list
// (number, creation time, creator, fingerprint) is metadata, kept apart
// from the key material, and survives [Store.Destroy] so the audit can
// still name what existed.
//
// An [Admin] record says who holds what: the admin's user name, PSK
// identity, and the client hosts and paths of their key files. It never
// holds key material.
//
// # Check-and-set
//
// Every write names the version the caller read ([Store.Put]'s cas, an
// Admin's Revision). If the store has moved on, the write fails with an
// error wrapping [ErrConflict] and changes nothing: two operators can never
// silently overwrite each other. cas 0 means "must not exist yet".
package keystore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/policies"
)

// Errors every store returns, wrapped with context.
var (
	ErrNotFound  = errors.New("not found in the store")
	ErrConflict  = errors.New("changed since it was read; rerun")
	ErrDestroyed = errors.New("key material was destroyed")
)

// ID names a credential in the store.
type ID string

// AuthkeyID is the cluster's Pacemaker Remote authkey.
const AuthkeyID ID = "authkey"

// CIB returns the ID of the CIB PSK of identity.
func CIB(identity string) ID { return ID("cib/" + identity) }

// Password returns the ID of the login password of identity (shared mode:
// hacluster's, which every admin needs for the PAM login after the CIB's
// TLS-PSK handshake).
func Password(identity string) ID { return ID("password/" + identity) }

// Kind returns the kind of key the credential holds.
func (id ID) Kind() keys.Kind {
	switch {
	case id == AuthkeyID:
		return keys.Authkey
	case strings.HasPrefix(string(id), "password/"):
		return keys.Password
	}
	return keys.PSK
}

// Identity returns the PSK identity of a CIB credential, or "".
func (id ID) Identity() string {
	ident, _ := strings.CutPrefix(string(id), "cib/")
	if ident == string(id) {
		return ""
	}
	return ident
}

// Validate checks that id is "authkey", or "cib/" or "password/" and a
// valid identity.
func (id ID) Validate() error {
	if id == AuthkeyID {
		return nil
	}
	ident, ok := strings.CutPrefix(string(id), "cib/")
	if !ok {
		ident, ok = strings.CutPrefix(string(id), "password/")
	}
	if !ok {
		return fmt.Errorf("credential %q: want authkey, cib/IDENTITY or password/IDENTITY", string(id))
	}
	return policies.ValidateIdentity(ident)
}

// Version describes one version of a credential, without its key.
type Version struct {
	Version     int       `json:"version"`
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"created_by,omitempty"`
	Fingerprint string    `json:"fingerprint"`
	Destroyed   bool      `json:"destroyed,omitempty"`
	// Holders is the summary of PutOptions.Holders the store kept: the
	// names, comma-separated, or their count past 512 bytes.
	Holders string `json:"holders,omitempty"`
}

// Credential is one version of a credential with its key.
type Credential struct {
	ID      ID          `json:"id"`
	Version Version     `json:"version"`
	Key     keys.Secret `json:"-"`
}

// Client is one place an admin holds their key.
type Client struct {
	Host    string `json:"host"`
	KeyFile string `json:"key_file"`
	EnvFile string `json:"env_file"`
	// PasswordFile holds hacluster's password (shared mode with a managed
	// password); empty in records written before pcmkeys managed it.
	PasswordFile string `json:"password_file,omitempty"`
}

// Admin is who holds what. Revision is the store's version of the record,
// used for check-and-set: 0 for a record not yet stored.
type Admin struct {
	User      string    `json:"user"`
	Identity  string    `json:"identity"`
	Clients   []Client  `json:"clients"`
	Onboarded time.Time `json:"onboarded"`
	// Revoked is set when a revocation started. Until Finished is set too,
	// some host may still hold something of theirs.
	Revoked time.Time `json:"revoked,omitempty"`
	// CutVersion, in shared mode, is the version of the shared key that
	// the revocation put on the nodes in place of the key the admin held:
	// a rerun that finds it (or a later one) in the store does not rotate
	// again.
	CutVersion int `json:"cut_version,omitempty"`
	// Finished is set when the revocation reached everything: no node
	// accepts the admin's key, no live session remained and their client
	// files are gone. The record stays as a tombstone, so a later revoke
	// says "already revoked".
	Finished time.Time `json:"finished,omitempty"`
	Revision int       `json:"-"`
}

// Active reports whether the admin holds access (not being revoked).
func (a Admin) Active() bool { return a.Revoked.IsZero() }

// RevocationFinished reports whether the admin was revoked and nothing of
// theirs is left anywhere.
func (a Admin) RevocationFinished() bool { return !a.Revoked.IsZero() && !a.Finished.IsZero() }

// Validate checks an admin record's names.
func (a Admin) Validate() error {
	var errs []error
	if err := policies.ValidateUser(a.User); err != nil {
		errs = append(errs, err)
	}
	if err := policies.ValidateIdentity(a.Identity); err != nil {
		errs = append(errs, err)
	}
	for _, c := range a.Clients {
		if err := policies.ValidateHost(c.Host); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// PutOptions describe a write.
type PutOptions struct {
	// CAS is the current version the caller read; 0 if it must not exist.
	CAS int
	// CreatedBy names the operator, for the version's metadata.
	CreatedBy string
	// Holders names the admins who receive this key, for the metadata;
	// the admin records are the full account of who holds what.
	Holders []string
}

// Store keeps credentials and admin records. Implementations are safe for
// concurrent use by many goroutines and many processes.
type Store interface {
	// Get returns the current version of id, or an error wrapping
	// ErrNotFound (never written, or destroyed).
	Get(ctx context.Context, id ID) (Credential, error)
	// Put stores key as a new version of id, if opts.CAS is the current
	// version; otherwise it fails wrapping ErrConflict and changes nothing.
	Put(ctx context.Context, id ID, key keys.Secret, opts PutOptions) (Version, error)
	// History lists id's versions, oldest first, destroyed ones included.
	History(ctx context.Context, id ID) ([]Version, error)
	// Destroy erases the key material of every version of id, if cas is
	// the current version. The version list stays.
	Destroy(ctx context.Context, id ID, cas int) error

	// GetAdmin returns user's record, or an error wrapping ErrNotFound.
	GetAdmin(ctx context.Context, user string) (Admin, error)
	// PutAdmin stores a, if a.Revision is the stored revision (0: new);
	// it returns the record with its new Revision.
	PutAdmin(ctx context.Context, a Admin) (Admin, error)
	// DeleteAdmin removes user's record, if revision is current.
	DeleteAdmin(ctx context.Context, user string, revision int) error
	// ListAdmins returns every admin record, sorted by user.
	ListAdmins(ctx context.Context) ([]Admin, error)

	// Lock takes the cluster's lock for owner until ttl has passed or
	// Unlock is called. While another owner holds an unexpired lock it
	// fails with an error wrapping ErrLocked that names the holder and the
	// expiry. An expired lock is taken over, so a crashed run blocks the
	// next one for ttl at most.
	Lock(ctx context.Context, owner string, ttl time.Duration) (Lease, error)
	// Renew extends a held lease to ttl from now and returns it; a lease
	// that expired and was taken over cannot be renewed (ErrConflict).
	Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// Unlock releases a lease; releasing one that expired and was taken
	// over is an error wrapping ErrConflict and changes nothing.
	Unlock(ctx context.Context, l Lease) error
	// BreakLock releases the lock if holder still holds it: for a holder
	// known to be dead (a crashed run on this machine). If someone else
	// holds it now, it fails wrapping ErrConflict.
	BreakLock(ctx context.Context, holder string) error

	// Close releases the store.
	Close() error
}
