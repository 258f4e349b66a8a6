package distribute

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestEachBoundsParallelism(t *testing.T) {
	items := make([]int, 50)
	for i := range items {
		items[i] = i
	}
	var cur, peak atomic.Int32
	errs := Each(context.Background(), items, 4, func(_ context.Context, i int) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		cur.Add(-1)
		if i%10 == 3 {
			return errors.New("odd one")
		}
		return nil
	})
	if peak.Load() > 4 || peak.Load() < 2 {
		t.Errorf("peak parallelism %d with a bound of 4", peak.Load())
	}
	for i, err := range errs {
		if (err != nil) != (i%10 == 3) {
			t.Errorf("item %d: %v", i, err)
		}
	}
}

func TestEachStopsStartingAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var started atomic.Int32
	errs := Each(ctx, make([]int, 20), 1, func(ctx context.Context, _ int) error {
		if started.Add(1) == 3 {
			cancel()
		}
		return nil
	})
	if started.Load() > 4 {
		t.Errorf("%d started after cancel at 3", started.Load())
	}
	if !errors.Is(errs[19], context.Canceled) {
		t.Errorf("last item: %v", errs[19])
	}
}
