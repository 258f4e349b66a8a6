// Command pcmkeys manages the keys that guard a Pacemaker cluster's remote
// interfaces: it generates CIB TLS-PSK keys and Pacemaker Remote authkeys,
// keeps them in a store, and delivers them as safely written files.
package main

import (
	"os"
	"runtime/debug"
)

func main() {
	softMemoryLimit()
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// memoryLimit is the Go heap's soft limit unless GOMEMLIMIT says
// otherwise. Most of a wide run's heap is its SSH connections (about
// 100 KB each, held from staging to the commit), and with Go's default
// pacing the heap doubles before a collection: 181 MB peak RSS for a
// rotation 1,000 hosts wide, 117 MB under this limit, at 2.6 s more of
// the client's CPU (docs/benchmarks.md). A soft limit: a run that needs
// more gets it, with more collections.
const memoryLimit = 96 << 20

// softMemoryLimit sets memoryLimit unless GOMEMLIMIT is set.
func softMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
