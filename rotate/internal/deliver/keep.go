package deliver

import (
	"context"
	"sync"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
)

// Handover carries a host's connection from one phase of a workflow to
// the next, so that a host the two phases both reach (a node that is
// also an admin's client host: staged and committed, then given the
// admin's new client files) logs in once.
//
// The workflow makes one with [Keep], naming the hosts its later phase
// reaches, runs the first phase under the context Keep returns and the
// later one under [Handover.Reuse], then calls [Handover.Close]:
//
//	first, kept := deliver.Keep(ctx, deliver.Names(later))
//	defer kept.Close()
//	... engine.Stage(first, …), Commit, Deliver … (the first phase)
//	engine.Deliver(kept.Reuse(ctx), later)
//	kept.Close()
//
// In the first phase, a host named in the set whose work ended well keeps
// its connection, open and idle, instead of closing it; any other host's
// is closed as before, so the hosts held between the phases are those
// both phases reach, and no more. A host that failed there (its
// connection may be what failed) is closed, and the later phase connects
// afresh. In the later phase the engine takes a kept connection for its
// host — it is then no longer kept — works the host over it and closes
// it as soon as that host is done. Close closes whatever was kept and
// not taken (the later phase never ran: an error, a cancelled run) and
// keeps nothing from then on; it may be called more than once.
//
// A connection is only ever used by one goroutine at a time: the phases
// run one after the other, each host's work in one goroutine, and taking
// a connection removes it from the set. The engine never takes a
// connection in the first phase, nor keeps one in the later.
type Handover struct {
	mu     sync.Mutex
	want   map[string]bool // hosts the later phase reaches, by name
	kept   map[string]keptConn
	closed bool
}

// keptConn is a connection kept between the phases, and the host it
// reaches.
type keptConn struct {
	host config.Host
	conn distribute.Host
}

// handoverKey is the context key of a phase.
type handoverKey struct{}

// phase is what the engine reads from its context: the handover, and
// whether this is the later phase (take) or the first (keep).
type phase struct {
	h     *Handover
	reuse bool
}

// Keep returns the context of a workflow's first phase, in which the
// engine keeps the connections of the hosts named (by their names in
// the config) that the later phase reaches, and the [Handover] that holds
// them.
func Keep(ctx context.Context, hosts []string) (context.Context, *Handover) {
	h := &Handover{want: map[string]bool{}, kept: map[string]keptConn{}}
	for _, name := range hosts {
		h.want[name] = true
	}
	return context.WithValue(ctx, handoverKey{}, phase{h: h}), h
}

// Reuse returns the context of the later phase, in which the engine
// works a host over the connection kept for it, if any, and closes it
// once the host is done.
func (h *Handover) Reuse(ctx context.Context) context.Context {
	return context.WithValue(ctx, handoverKey{}, phase{h: h, reuse: true})
}

// Close closes every connection kept and not taken, and makes the
// handover keep nothing more.
func (h *Handover) Close() {
	h.mu.Lock()
	kept := h.kept
	h.kept, h.closed = nil, true
	h.mu.Unlock()
	for _, k := range kept {
		k.conn.Close()
	}
}

// keep holds conn for the later phase if that phase reaches host and no
// connection is held for it yet, and reports whether it did; if not, the
// caller closes conn.
func (h *Handover) keep(host config.Host, conn distribute.Host) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, held := h.kept[host.Name]; h.closed || held || !h.want[host.Name] {
		return false
	}
	h.kept[host.Name] = keptConn{host: host, conn: conn}
	return true
}

// take returns the connection kept for host, or nil, and forgets it. A
// connection kept for another host of the same name (never so within one
// config) is closed, not used.
func (h *Handover) take(host config.Host) distribute.Host {
	h.mu.Lock()
	k, ok := h.kept[host.Name]
	delete(h.kept, host.Name)
	delete(h.want, host.Name)
	h.mu.Unlock()
	if !ok {
		return nil
	}
	if k.host != host {
		k.conn.Close()
		return nil
	}
	return k.conn
}

// phaseOf is the handover phase ctx runs in (a zero phase for none).
func phaseOf(ctx context.Context) phase {
	p, _ := ctx.Value(handoverKey{}).(phase)
	return p
}

// Names lists the names of the plans' hosts (those the config lists), for
// [Keep].
func Names(hs []Host) []string {
	var out []string
	for _, d := range hs {
		if !d.Orphan {
			out = append(out, d.Host.Name)
		}
	}
	return out
}
