package main

import (
	"fmt"
	"io"

	"github.com/pcmkeys/pcmkeys/rotate"
)

// progress reports hosts as they finish, on stderr: on a terminal one live
// line, rewritten in place; otherwise a plain line per host, for logs.
type progress struct {
	w        io.Writer
	terminal bool
	failed   int
}

// newProgress reports hosts as they finish on stderr; not with -q, nor
// with --output json, whose report has every host (stderr then holds
// only the error, if any, as JSON).
func newProgress(g *globals) func(done, total int, r rotate.HostResult) {
	if g.quiet || g.output == "json" {
		return nil
	}
	p := &progress{w: g.stderr, terminal: isTerminal(g.stderr)}
	return p.update
}

func (p *progress) update(done, total int, r rotate.HostResult) {
	if !r.OK() {
		p.failed++
	}
	if !p.terminal {
		fmt.Fprintf(p.w, "pcmkeys: [%d/%d] %s %s\n", done, total, r.Host, words(r.Status))
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%d/%d hosts done, %d failed (last: %s %s)", done, total, p.failed, r.Host, words(r.Status))
	if done == total {
		fmt.Fprintln(p.w)
	}
}
