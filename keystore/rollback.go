package keystore

import (
	"context"
	"fmt"
)

// Rollback makes version to of id current again by writing its key as a
// new version, check-and-set against the version current when it started.
// Nothing is deleted: the versions after to stay in the history.
func Rollback(ctx context.Context, s Store, id ID, to int, by string) (Version, error) {
	hist, err := s.History(ctx, id)
	if err != nil {
		return Version{}, err
	}
	cur := hist[len(hist)-1].Version
	if to == cur {
		return Version{}, fmt.Errorf("%s: version %d is already current", id, to)
	}
	old, err := s.GetVersion(ctx, id, to)
	if err != nil {
		return Version{}, err
	}
	return s.Put(ctx, id, old.Key, PutOptions{CAS: cur, CreatedBy: by})
}
