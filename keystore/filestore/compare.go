package filestore

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// compare fills in how the store's state (cur, or the error reading it)
// differs from the archive's, record by record.
func (res *RestoreResult) compare(cur *archive, readErr error, a *archive) {
	if readErr != nil {
		res.Changed = true
		res.Differences = append(res.Differences, fmt.Sprintf("the store cannot be read as it is: %v", readErr))
		return
	}
	res.Changed = cur.State != a.State
	had := map[keystore.ID]meta{}
	for _, c := range cur.Credentials {
		had[c.ID] = c.meta
	}
	for _, c := range a.Credentials {
		m, ok := had[c.ID]
		delete(had, c.ID)
		want := c.Versions[len(c.Versions)-1]
		if !ok {
			res.Differences = append(res.Differences, fmt.Sprintf("%s: not in the store; the backup's version %d comes back", c.ID, want.Version))
			res.AuthkeyChanged = res.AuthkeyChanged || c.ID == keystore.AuthkeyID
			continue
		}
		got := m.Versions[len(m.Versions)-1]
		switch {
		case got.Version != want.Version || got.Fingerprint != want.Fingerprint:
			res.AuthkeyChanged = res.AuthkeyChanged || c.ID == keystore.AuthkeyID
			res.Differences = append(res.Differences, fmt.Sprintf("%s: the store is at version %d (%s), the backup at version %d (%s)", c.ID, got.Version, got.Fingerprint, want.Version, want.Fingerprint))
		case !sameJSON(m, c.meta):
			res.Differences = append(res.Differences, fmt.Sprintf("%s: the versions' records differ (destroyed, dates or holders)", c.ID))
		}
	}
	for _, id := range sortedKeys(had) {
		m := had[id]
		res.Differences = append(res.Differences, fmt.Sprintf("%s: made after the backup (version %d); the restore removes it", id, m.Versions[len(m.Versions)-1].Version))
	}
	before := map[string]adminFile{}
	for _, ad := range cur.Admins {
		before[ad.User] = ad
	}
	for _, ad := range a.Admins {
		old, ok := before[ad.User]
		delete(before, ad.User)
		switch {
		case !ok:
			res.Differences = append(res.Differences, fmt.Sprintf("admin %s: not in the store; the backup's record (%s) comes back", ad.User, adminState(ad.Admin)))
		case sameJSON(old, ad):
		default:
			res.Differences = append(res.Differences, fmt.Sprintf("admin %s: the store has revision %d (%s), the backup revision %d (%s)", ad.User, old.Revision, adminState(old.Admin), ad.Revision, adminState(ad.Admin)))
			if !old.Active() && ad.Active() {
				res.Readmitted = append(res.Readmitted, ad.User)
			}
		}
	}
	for _, u := range sortedKeys(before) {
		res.Dropped = append(res.Dropped, u)
		res.Differences = append(res.Differences, fmt.Sprintf("admin %s: onboarded after the backup (%s); the restore removes the record", u, adminState(before[u].Admin)))
	}
	if res.Changed && len(res.Differences) == 0 {
		res.Differences = append(res.Differences, "the records differ")
	}
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
