package deliver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// conns opens a lab's hosts and keeps count: how often each host was
// opened and closed. It fails the test if a connection is used after it
// was closed, closed twice, or used by two goroutines at once.
type conns struct {
	t       *testing.T
	connect func(ctx context.Context, h config.Host) (distribute.Host, error)
	mu      sync.Mutex
	opened  map[string]int
	closed  map[string]int
}

func newConns(t *testing.T, l lab) *conns {
	return &conns{t: t, connect: l.connect, opened: map[string]int{}, closed: map[string]int{}}
}

func (c *conns) Connect(ctx context.Context, h config.Host) (distribute.Host, error) {
	conn, err := c.connect(ctx, h)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.opened[h.Name]++
	c.mu.Unlock()
	return &counted{Host: conn, c: c}, nil
}

// count says, per host in names order, "name opened/closed".
func (c *conns) count(names ...string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, n := range names {
		out = append(out, fmt.Sprintf("%s %d/%d", n, c.opened[n], c.closed[n]))
	}
	return strings.Join(out, " ")
}

// counted is one connection of conns. (It hides a host's batching: the
// local hosts it wraps have none.)
type counted struct {
	distribute.Host
	c      *conns
	busy   atomic.Int32
	closed atomic.Bool
}

func (h *counted) use() func() {
	if h.closed.Load() {
		h.c.t.Errorf("%s: used after it was closed", h.Name())
	}
	if h.busy.Add(1) != 1 {
		h.c.t.Errorf("%s: used by two goroutines at once", h.Name())
	}
	time.Sleep(time.Millisecond) // widen the window an overlap would need
	return func() { h.busy.Add(-1) }
}

func (h *counted) Close() error {
	if h.closed.Swap(true) {
		h.c.t.Errorf("%s: closed twice", h.Name())
	}
	h.c.mu.Lock()
	h.c.closed[h.Name()]++
	h.c.mu.Unlock()
	return h.Host.Close()
}

func (h *counted) LookupUser(ctx context.Context, name string) (distribute.Account, error) {
	defer h.use()()
	return h.Host.LookupUser(ctx, name)
}

func (h *counted) Stage(ctx context.Context, f distribute.File) (distribute.Staged, error) {
	defer h.use()()
	return h.Host.Stage(ctx, f)
}

func (h *counted) Remove(ctx context.Context, path, owner string) error {
	defer h.use()()
	return h.Host.Remove(ctx, path, owner)
}

func (h *counted) Inspect(ctx context.Context, path, owner string) (distribute.FileState, error) {
	defer h.use()()
	return h.Host.Inspect(ctx, path, owner)
}

func (h *counted) Sweep(ctx context.Context, path, owner string) (int, error) {
	defer h.use()()
	return h.Host.Sweep(ctx, path, owner)
}

// plans are a plan per host, each writing a file of its own.
func plans(names ...string) []Host {
	var out []Host
	for _, n := range names {
		out = append(out, Host{Host: config.Host{Name: n}, Files: []Want{srv(n+"-key", "k-"+n, WriteAlways)}})
	}
	return out
}

// TestHandover: a host that both phases reach is opened once, its
// connection kept between them only while the later phase still needs
// it; every other host's is closed when its phase is done with it, and
// every connection is closed in the end, on every path (a failed host, an
// abort, a cancelled commit, a dry run, a later phase that never runs).
// "a" is reached by both phases, "b" by the first only, "c" by the later
// only; counts are "host opened/closed".
func TestHandover(t *testing.T) {
	type phase func(ctx context.Context, e *Engine, hs []Host) []Result
	stageCommit := func(ctx context.Context, e *Engine, hs []Host) []Result {
		st, res := e.Stage(ctx, hs)
		if Partial(res) != nil {
			st.Abort(ctx)
			return res
		}
		return st.Commit(ctx)
	}
	stageAbort := func(ctx context.Context, e *Engine, hs []Host) []Result {
		st, res := e.Stage(ctx, hs)
		st.Abort(ctx)
		return res
	}
	deliver := func(ctx context.Context, e *Engine, hs []Host) []Result {
		res, _ := e.Deliver(ctx, hs)
		return res
	}
	cancelledCommit := func(ctx context.Context, e *Engine, hs []Host) []Result {
		// More hosts: each is reached or not at random, as the cancelled
		// context races with the start of its commit.
		hs = append(hs, plans("x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7")...)
		st, res := e.Stage(ctx, hs)
		if err := Partial(res); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		return st.Commit(ctx)
	}
	for _, tc := range []struct {
		name   string
		first  phase
		dryRun bool
		// prepare readies the hosts (a link where a file is to go).
		prepare string
		// noHandover runs both phases under the plain context.
		noHandover bool
		// later is false where the later phase never runs.
		later bool
		// after1 is the count after the first phase, after2 after the
		// later one, before the handover is closed; final after that.
		after1, after2, final string
	}{
		{name: "staged, committed, then delivered", first: stageCommit, later: true,
			after1: "a 1/0 b 1/1 c 0/0", after2: "a 1/1 b 1/1 c 1/1", final: "a 1/1 b 1/1 c 1/1"},
		{name: "delivered twice", first: deliver, later: true,
			after1: "a 1/0 b 1/1 c 0/0", after2: "a 1/1 b 1/1 c 1/1", final: "a 1/1 b 1/1 c 1/1"},
		{name: "a dry run", first: deliver, dryRun: true, later: true,
			after1: "a 1/0 b 1/1 c 0/0", after2: "a 1/1 b 1/1 c 1/1", final: "a 1/1 b 1/1 c 1/1"},
		{name: "without a handover, as before", first: stageCommit, noHandover: true, later: true,
			after1: "a 1/1 b 1/1 c 0/0", after2: "a 2/2 b 1/1 c 1/1", final: "a 2/2 b 1/1 c 1/1"},
		{name: "a host that failed is not kept", first: deliver, later: true, prepare: `ln -s /etc/passwd "$R/etc/pacemaker/a-key"`,
			after1: "a 1/1 b 1/1 c 0/0", after2: "a 2/2 b 1/1 c 1/1", final: "a 2/2 b 1/1 c 1/1"},
		{name: "a failed staging is aborted, nothing kept", first: stageCommit, prepare: `ln -s /etc/passwd "$R/etc/pacemaker/b-key"`,
			after1: "a 1/1 b 1/1 c 0/0", final: "a 1/1 b 1/1 c 0/0"},
		{name: "an abort keeps nothing", first: stageAbort,
			after1: "a 1/1 b 1/1 c 0/0", final: "a 1/1 b 1/1 c 0/0"},
		{name: "the later phase never runs", first: deliver,
			after1: "a 1/0 b 1/1 c 0/0", final: "a 1/1 b 1/1 c 0/0"},
		{name: "a cancelled commit", first: cancelledCommit, later: true,
			// a is kept only if its commit ran (the cancelled context
			// races with the start of each host's commit).
			final: "b 1/1 c 1/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := localLab(t, false)
			l.sh(t, "mkdir -p \"$R/etc/pacemaker\"\n"+tc.prepare)
			c := newConns(t, l)
			e := &Engine{Connect: c.Connect, DryRun: tc.dryRun}
			ctx := context.Background()
			first, kept := Keep(ctx, Names(plans("a", "c")))
			defer kept.Close()
			later := kept.Reuse(ctx)
			if tc.noHandover {
				first, later = ctx, ctx
			}
			tc.first(first, e, plans("a", "b"))
			if got := c.count("a", "b", "c"); tc.after1 != "" && got != tc.after1 {
				t.Errorf("after the first phase: %s, want %s", got, tc.after1)
			}
			if tc.later {
				res, _ := e.Deliver(later, plans("a", "c"))
				if got := c.count("a", "b", "c"); tc.after2 != "" && got != tc.after2 {
					t.Errorf("after the later phase: %s, want %s", got, tc.after2)
				}
				if i := slices.IndexFunc(res, func(r Result) bool { return r.Host == "a" }); !strings.Contains(tc.prepare, "a-key") && !res[i].OK() {
					t.Errorf("a in the later phase: %+v", res[i])
				}
			}
			kept.Close()
			kept.Close() // a second Close is harmless
			if got := c.count("a", "b", "c"); !strings.HasSuffix(got, tc.final) {
				t.Errorf("in the end: %s, want %s", got, tc.final)
			}
			c.mu.Lock()
			for n, k := range c.opened {
				if c.closed[n] != k {
					t.Errorf("%s: opened %d times, closed %d", n, k, c.closed[n])
				}
			}
			c.mu.Unlock()
			if got := l.sh(t, `ls -A "$R/etc/pacemaker" | grep '^\.' || :`); got != "" {
				t.Errorf("temporary files left: %s", got)
			}
		})
	}
}

// TestHandoverParallel: with many hosts worked in parallel, each host the
// two phases share is opened once and its connection is never used by
// two goroutines at once (run it with -race).
func TestHandoverParallel(t *testing.T) {
	l := localLab(t, false)
	c := newConns(t, l)
	e := &Engine{Connect: c.Connect, Parallel: 4}
	var nodes, clients, all []string
	for i := range 24 {
		n := fmt.Sprintf("h%02d", i)
		all = append(all, n)
		if i < 16 {
			nodes = append(nodes, n)
		}
		if i%2 == 0 {
			clients = append(clients, n)
		}
	}
	ctx := context.Background()
	first, kept := Keep(ctx, clients)
	defer kept.Close()
	st, res := e.Stage(first, plans(nodes...))
	if err := Partial(res); err != nil {
		t.Fatal(err)
	}
	if err := Partial(st.Commit(first)); err != nil {
		t.Fatal(err)
	}
	later := plans(clients...)
	for i := range later { // two files a host, merged: still one connection
		later = append(later, Host{Host: later[i].Host, Files: []Want{srv(later[i].Host.Name+"-more", "m", WriteIfDrift)}})
	}
	if _, err := e.Deliver(kept.Reuse(ctx), later); err != nil {
		t.Fatal(err)
	}
	kept.Close()
	var want []string
	for i, n := range all {
		opened := 0
		if i < 16 || i%2 == 0 {
			opened = 1
		}
		want = append(want, fmt.Sprintf("%s %d/%d", n, opened, opened))
	}
	if got := c.count(all...); got != strings.Join(want, " ") {
		t.Errorf("got  %s\nwant %s", got, strings.Join(want, " "))
	}
}

// TestHandoverSSH: on real sshd hosts, a node that is also a client host
// logs in once for a stage, a commit and a later delivery, and a node
// that is not logs in once too; without the handover the first logs in
// twice. Logins are counted from sshd's log ("Accepted publickey").
func TestHandoverSSH(t *testing.T) {
	lab := sshlab.Start(t, 2, sshlab.Options{LogLevel: "VERBOSE"})
	d, err := distribute.NewSSHDialer(distribute.SSHConfig{User: "root", KnownHosts: lab.KnownHosts, IdentityFiles: []string{lab.IdentityFile}, ConnectTimeout: 10 * time.Second, CommandTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	port := map[string]int{"a": lab.Hosts[0].Port, "b": lab.Hosts[1].Port}
	e := &Engine{Connect: func(ctx context.Context, h config.Host) (distribute.Host, error) {
		return d.Open(ctx, h.Name, distribute.SSHEndpoint{Address: "127.0.0.1", Port: port[h.Name]}, "")
	}}
	count := func(i int, what string) int {
		log, err := lab.Hosts[i].Log()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(log, what)
	}
	ctx := context.Background()
	for _, handover := range []bool{true, false} {
		l0, l1, s0 := count(0, "Accepted publickey"), count(1, "Accepted publickey"), count(0, "Starting session: ")
		first, kept := Keep(ctx, []string{"a"})
		later := kept.Reuse(ctx)
		if !handover {
			first, later = ctx, ctx
		}
		st, res := e.Stage(first, plans("a", "b"))
		if err := Partial(res); err != nil {
			t.Fatal(err)
		}
		if err := Partial(st.Commit(first)); err != nil {
			t.Fatal(err)
		}
		res, err := e.Deliver(later, []Host{{Host: config.Host{Name: "a"}, Files: []Want{removal("alice", "gone")}}})
		if err != nil || res[0].Files[0].Action != ActionRemoved {
			t.Fatalf("delivery: %v %+v", err, res)
		}
		kept.Close()
		logins0, logins1, sessions := count(0, "Accepted publickey")-l0, count(1, "Accepted publickey")-l1, count(0, "Starting session: ")-s0
		want0 := 1
		if !handover {
			want0 = 2
		}
		if logins0 != want0 || logins1 != 1 || sessions != 3 {
			t.Errorf("handover %v: logins a %d, b %d, sessions a %d; want %d, 1, 3 (stage, commit, delivery)", handover, logins0, logins1, sessions, want0)
		}
	}
}
