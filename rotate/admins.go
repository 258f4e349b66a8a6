package rotate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// AdminsReport is who holds what, where, and how old it is.
type AdminsReport struct {
	Admins []AdminEntry `json:"admins"`
}

// AdminState is where an admin is in their life: active, being revoked
// (a revocation that has not finished), or revoked (a tombstone).
type AdminState string

// Admin states.
const (
	AdminActive   AdminState = "active"
	AdminRevoking AdminState = "revoking"
	AdminRevoked  AdminState = "revoked"
)

// AdminEntry is one admin's record and their key's current version (read
// from the store's history: no key is read).
type AdminEntry struct {
	User      string            `json:"user"`
	Identity  string            `json:"identity"`
	State     AdminState        `json:"state"`
	Onboarded time.Time         `json:"onboarded"`
	Revoked   *time.Time        `json:"revoked,omitempty"`
	Clients   []keystore.Client `json:"clients"`
	// Credential is the key the admin holds (the shared one in shared
	// mode), its current version, and its age in whole seconds.
	Credential  keystore.ID `json:"credential"`
	Version     int         `json:"version"`
	Fingerprint string      `json:"fingerprint"`
	KeyCreated  time.Time   `json:"key_created"`
	KeyAge      string      `json:"key_age"`
	KeyAgeSecs  int64       `json:"key_age_seconds"`
}

// Admins lists every admin the store records, revoked ones included,
// sorted by user. It changes nothing and takes no lock.
func Admins(ctx context.Context, e *Env) (*AdminsReport, error) {
	rep := &AdminsReport{Admins: []AdminEntry{}}
	admins, err := e.Store.ListAdmins(ctx)
	if err != nil {
		return rep, fmt.Errorf("list admins: %w", err)
	}
	sort.Slice(admins, func(i, j int) bool { return admins[i].User < admins[j].User })
	versions := map[keystore.ID]keystore.Version{}
	now := e.now()
	for _, a := range admins {
		en := AdminEntry{User: a.User, Identity: a.Identity, State: AdminActive, Onboarded: a.Onboarded,
			Clients: a.Clients, Credential: keystore.CIB(a.Identity)}
		if en.Clients == nil {
			en.Clients = []keystore.Client{}
		}
		switch {
		case a.RevocationFinished():
			en.State = AdminRevoked
		case !a.Active():
			en.State = AdminRevoking
		}
		if !a.Active() {
			r := a.Revoked
			en.Revoked = &r
		}
		if a.Active() {
			v, ok := versions[en.Credential]
			if !ok {
				hist, err := e.Store.History(ctx, en.Credential)
				if err != nil && !errors.Is(err, keystore.ErrNotFound) {
					return rep, fmt.Errorf("history of %s: %w", en.Credential, err)
				}
				if len(hist) > 0 {
					v = hist[len(hist)-1]
				}
				versions[en.Credential] = v
			}
			if v.Version > 0 {
				age := now.Sub(v.Created)
				en.Version, en.Fingerprint, en.KeyCreated = v.Version, v.Fingerprint, v.Created
				en.KeyAge, en.KeyAgeSecs = policies.FormatAge(age.Truncate(policies.Day)), int64(age.Seconds())
			}
		}
		rep.Admins = append(rep.Admins, en)
	}
	return rep, nil
}
