package distribute

import (
	"context"
	"sync"
)

// DefaultParallel is how many hosts are worked on at once unless the
// operator says otherwise (--parallel).
const DefaultParallel = 64

// Each runs fn for every item with at most parallel running at once, and
// returns the errors in the items' order (nil where fn succeeded). Items
// not started before ctx ends get ctx's error.
func Each[T any](ctx context.Context, items []T, parallel int, fn func(context.Context, T) error) []error {
	if parallel < 1 {
		parallel = DefaultParallel
	}
	errs := make([]error, len(items))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for j := i; j < len(items); j++ {
				errs[j] = ctx.Err()
			}
			wg.Wait()
			return errs
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(ctx, it)
		}()
	}
	wg.Wait()
	return errs
}
