package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestSoftMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	for _, tc := range []struct {
		env  string
		want int64
	}{
		{"", memoryLimit},
		{"1GiB", math.MaxInt64}, // the environment's word stands: nothing set here
	} {
		debug.SetMemoryLimit(math.MaxInt64)
		t.Setenv("GOMEMLIMIT", tc.env)
		softMemoryLimit()
		if got := debug.SetMemoryLimit(-1); got != tc.want {
			t.Errorf("GOMEMLIMIT=%q: the limit is %d, want %d", tc.env, got, tc.want)
		}
	}
}
