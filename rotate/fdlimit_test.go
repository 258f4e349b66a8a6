package rotate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/policies"
	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"
)

// hostsOf makes ssh SSH nodes, local local nodes, remote SSH remote nodes
// and clients SSH clients.
func hostsOf(ssh, local, remote, clients int) []config.Host {
	var hs []config.Host
	add := func(n int, role config.Role, isLocal bool) {
		for range n {
			hs = append(hs, config.Host{Name: fmt.Sprintf("h%d", len(hs)), Role: role, Local: isLocal})
		}
	}
	add(ssh, config.RoleNode, false)
	add(local, config.RoleNode, true)
	add(remote, config.RoleRemoteNode, false)
	add(clients, config.RoleClient, false)
	return hs
}

// TestFdNeed: what a staged run needs against the limit, by hosts, roles,
// --parallel and local nodes.
func TestFdNeed(t *testing.T) {
	cib := []policies.FileKind{policies.CIBCredentials}
	both := []policies.FileKind{policies.CIBCredentials, policies.Authkey}
	const open = 9 // what a run holds at the check (measured: stdio, epoll, cgroup files, inherited)
	for _, tc := range []struct {
		name     string
		hosts    []config.Host
		kinds    []policies.FileKind
		parallel int
		limit    uint64
		need     int
		fits     bool
	}{
		// The measured failure: 100 nodes under 64, refused up front.
		{"100 nodes, limit 64", hostsOf(100, 0, 0, 0), cib, 64, 64, open + fdsLater + 100 + 64, false},
		{"200 nodes, limit 64", hostsOf(200, 0, 0, 0), cib, 64, 64, 289, false},
		{"200 nodes, limit exactly enough", hostsOf(200, 0, 0, 0), cib, 64, 289, 289, true},
		{"200 nodes, one short", hostsOf(200, 0, 0, 0), cib, 64, 288, 289, false},
		// --parallel bounds the dials, not what is held.
		{"200 nodes, parallel 1", hostsOf(200, 0, 0, 0), cib, 1, 1024, open + fdsLater + 200 + 1, true},
		{"200 nodes, parallel 1000", hostsOf(200, 0, 0, 0), cib, 1000, 1024, open + fdsLater + 200 + 200, true},
		{"parallel 0 is the default", hostsOf(200, 0, 0, 0), cib, 0, 1024, open + fdsLater + 200 + distribute.DefaultParallel, true},
		// 1,000 nodes: systemd's default hard limit holds it, 1024 does not.
		{"1000 nodes, limit 1024", hostsOf(1000, 0, 0, 0), cib, 64, 1024, open + fdsLater + 1000 + 64, false},
		{"1000 nodes, systemd's hard limit", hostsOf(1000, 0, 0, 0), cib, 64, 524287, 1089, true},
		{"1000 nodes, parallel 1000, limit 2000", hostsOf(1000, 0, 0, 0), cib, 1000, 2000, open + fdsLater + 2000, false},
		{"no limit", hostsOf(1000, 0, 0, 0), cib, 1000, math.MaxUint64, open + fdsLater + 2000, true},
		// Local nodes hold no socket but three descriptors per staged file.
		{"local nodes, CIB", hostsOf(0, 10, 0, 0), cib, 64, 64, open + fdsLater + 10*3 + 10, false},
		{"local nodes, CIB and authkey", hostsOf(0, 10, 0, 0), both, 64, 1024, open + fdsLater + 20*3 + 10, true},
		{"mixed", hostsOf(50, 2, 0, 0), cib, 8, 1024, open + fdsLater + 50 + 2*3 + 8, true},
		// Remote nodes are staged only for the authkey; clients never.
		{"remote nodes, CIB only", hostsOf(10, 0, 100, 0), cib, 64, 64, open + fdsLater + 10 + 10, true},
		{"remote nodes, authkey", hostsOf(10, 0, 100, 0), both, 64, 64, open + fdsLater + 110 + 64, false},
		{"clients", hostsOf(2, 0, 0, 500), both, 64, 64, open + fdsLater + 2 + 2, true},
		{"nothing staged", hostsOf(0, 0, 0, 500), both, 64, 64, open + fdsLater, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := stagedNeed(tc.hosts, tc.kinds, tc.parallel, open)
			if n.total() != tc.need {
				t.Errorf("need %d (%+v), want %d", n.total(), n, tc.need)
			}
			if n.fits(tc.limit) != tc.fits {
				t.Errorf("fits(%d) = %v, want %v (need %d)", tc.limit, !tc.fits, tc.fits, n.total())
			}
			if !tc.fits {
				err := fdLimitError("rotate", n, tc.limit, tc.limit)
				msg := err.Error()
				for _, want := range []string{fmt.Sprintf("the limit is %d", tc.limit), fmt.Sprintf("up to %d open files", tc.need),
					fmt.Sprintf("ulimit -n %d", tc.need), fmt.Sprintf("LimitNOFILE=%d", tc.need), "nothing was changed"} {
					if !strings.Contains(msg, want) {
						t.Errorf("%q does not say %q", msg, want)
					}
				}
				if !errors.Is(err, ErrBadInput) {
					t.Errorf("%v is not bad input (exit 2)", err)
				}
			}
		})
	}
}

// TestFdRotationKinds: the files a rotation may stage, as selectRotation
// picks its keys.
func TestFdRotationKinds(t *testing.T) {
	cib, auth := policies.CIBCredentials, policies.Authkey
	for _, tc := range []struct {
		req  Request
		want []policies.FileKind
	}{
		{Request{}, []policies.FileKind{cib}},
		{Request{CIB: true}, []policies.FileKind{cib}},
		{Request{Users: []string{"alice"}}, []policies.FileKind{cib}},
		{Request{Authkey: true}, []policies.FileKind{auth}},
		{Request{Authkey: true, Restart: true}, []policies.FileKind{auth}},
		{Request{CIB: true, Authkey: true}, []policies.FileKind{cib, auth}},
		{Request{Due: true}, []policies.FileKind{cib, auth}},
		{Request{Due: true, CIB: true}, []policies.FileKind{cib}},
	} {
		if got := rotationKinds(tc.req); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.req, got, tc.want)
		}
	}
}

// fdChildEnv, in a copy of this test binary, holds the limit it runs under.
const fdChildEnv = "PCMKEYS_FDLIMIT_CHILD"

// fdCluster is a shared-mode cluster with alice onboarded (two local
// nodes) plus 200 SSH nodes that are never reached: Connect counts its
// calls and fails.
func fdCluster(t *testing.T) (*cluster, *atomic.Int32) {
	t.Helper()
	c := onboarded(t, "file", "shared")
	cfg := *c.env.Config
	cfg.Hosts = slices.Clone(cfg.Hosts)
	for i := range 200 {
		cfg.Hosts = append(cfg.Hosts, config.Host{Name: fmt.Sprintf("n%03d", i), Address: "127.99.0.1", Port: 1000 + i, Role: config.RoleNode})
	}
	c.env.Config = &cfg
	var calls atomic.Int32
	c.env.Connect = func(ctx context.Context, h config.Host) (distribute.Host, error) {
		if h.Local {
			return distribute.NewLocal(h.Name, h.Root)
		}
		calls.Add(1)
		return nil, fmt.Errorf("host %s: %w (test)", h.Name, distribute.ErrUnreachable)
	}
	c.env.Parallel = 64
	return c, &calls
}

// TestFdLimitRefusesFirst: under a limit too low for 200 nodes, rotate and
// a shared-mode revoke are refused as bad input (exit 2) before the lock,
// the store or any host: no host contacted, the store and the nodes
// unchanged. Under a limit that holds them, the same run gets past the
// check and fails on the hosts instead. The refusal runs in a copy of this
// test binary started under prlimit, so this process keeps its limit.
func TestFdLimitRefusesFirst(t *testing.T) {
	if os.Getenv(fdChildEnv) != "" {
		fdLimitChild(t)
		return
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit (util-linux) to run a copy of the test under a low RLIMIT_NOFILE")
	}
	cmd := exec.Command(prlimit, "--nofile=64:64", os.Args[0], "-test.run=^TestFdLimitRefusesFirst$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), fdChildEnv+"=64", "PCMKEYS_SKIP_VAULT=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFdLimitRefusesFirst") {
		t.Fatalf("the run under 64 open files: %v\n%s", err, out)
	}

	// The same cluster under this process's own limit.
	c, calls := fdCluster(t)
	soft, _, err := openFiles()
	if err != nil {
		t.Fatal(err)
	}
	if n := stagedNeed(c.env.Config.Hosts, rotationKinds(Request{CIB: true}), c.env.Parallel, openFDs(soft)); !n.fits(soft) {
		t.Skipf("this process's own limit (%d) cannot hold the %d the run needs", soft, n.total())
	}
	before := storeState(t, c)
	_, err = Rotate(context.Background(), c.env, Request{CIB: true})
	if errors.Is(err, ErrBadInput) || !errors.Is(err, ErrPartial) {
		t.Fatalf("rotate under %d open files: %v, want the hosts' failure", soft, err)
	}
	if got := calls.Load(); got != 200 {
		t.Errorf("%d SSH nodes contacted, want 200", got)
	}
	if after := storeState(t, c); after != before {
		t.Errorf("staging failed, yet the store changed: %s, then %s", before, after)
	}
}

// fdLimitChild is TestFdLimitRefusesFirst under prlimit.
func fdLimitChild(t *testing.T) {
	soft, hard, err := openFiles()
	if err != nil || soft != 64 || hard != 64 {
		t.Fatalf("RLIMIT_NOFILE %d:%d (%v), want 64:64", soft, hard, err)
	}
	c, calls := fdCluster(t)
	ctx := context.Background()
	admins := func() string {
		as, err := c.env.Store.ListAdmins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%+v", as)
	}
	before, tree, records := storeState(t, c), treeState(t, c), admins()
	for _, run := range []struct {
		name string
		fn   func() (*Report, error)
	}{
		{"rotate", func() (*Report, error) { return Rotate(ctx, c.env, Request{CIB: true}) }},
		{"rotate --due", func() (*Report, error) { return Rotate(ctx, c.env, Request{Due: true}) }},
		{"revoke", func() (*Report, error) { return Revoke(ctx, c.env, []string{"alice"}) }},
	} {
		rep, err := run.fn()
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "the limit is 64") || !strings.Contains(err.Error(), "200 SSH nodes") {
			t.Errorf("%s: %v, want a refusal naming the limit", run.name, err)
		}
		if len(rep.Hosts) != 0 || len(rep.Credentials) != 0 {
			t.Errorf("%s: refused, yet reported %+v", run.name, rep)
		}
	}
	if got := calls.Load(); got != 0 {
		t.Errorf("%d SSH nodes contacted before the refusal", got)
	}
	if after := storeState(t, c); after != before {
		t.Errorf("the store changed: %s, then %s", before, after)
	}
	if after := treeState(t, c); after != tree {
		t.Errorf("files changed:\n%s---\n%s", tree, after)
	}
	if after := admins(); after != records {
		t.Errorf("the admins' records changed:\n%s\n---\n%s", records, after)
	}
	// Per-user mode stages nothing in a revocation: no check.
	c.env.Config.Policy.IdentityMode = policies.PerUser
	if _, err := Revoke(ctx, c.env, []string{"nobody"}); err == nil || strings.Contains(err.Error(), "open files") {
		t.Errorf("per-user revoke: %v, want no limit refusal", err)
	}
}

// socketsOpen counts this process's open sockets.
func socketsOpen(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// filesOpen counts this process's open descriptors.
func filesOpen(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestFdStagingHoldsLocal: what the count assumes of a local node is what
// staging holds: three descriptors per staged file until the commit.
func TestFdStagingHoldsLocal(t *testing.T) {
	c := onboarded(t, "file", "shared")
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		kinds []policies.FileKind
	}{
		{"cib", []policies.FileKind{policies.CIBCredentials}},
		{"cib and authkey", []policies.FileKind{policies.CIBCredentials, policies.Authkey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			psk, err := c.env.generate(keys.PSK)
			if err != nil {
				t.Fatal(err)
			}
			var auth keys.Secret
			if slices.Contains(tc.kinds, policies.Authkey) {
				if auth, err = c.env.generate(keys.Authkey); err != nil {
					t.Fatal(err)
				}
			}
			entries := []credfile.Entry{{Identity: policies.SharedIdentity, Key: psk}}
			ds, err := c.env.serverDeliveries(entries, auth, deliver.WriteAlways)
			if err != nil {
				t.Fatal(err)
			}
			n := stagedNeed(c.env.Config.Hosts, tc.kinds, c.env.Parallel, 0)
			before := filesOpen(t)
			staged, results := c.env.engine().Stage(ctx, ds)
			held := filesOpen(t) - before
			staged.Abort(ctx)
			if err := deliver.Partial(results); err != nil {
				t.Fatal(err)
			}
			if want := n.localFiles * fdsPerLocalFile; held != want || n.localFiles != 2*len(tc.kinds) {
				t.Errorf("staging held %d descriptors; the count says %d (%d files)", held, want, n.localFiles)
			}
			if after := filesOpen(t); after != before {
				t.Errorf("%d descriptors open after the abort, %d before", after, before)
			}
		})
	}
}

// TestFdStagingHoldsSSH: staging on SSH nodes holds one socket per node
// until the commit, directly or through a jump host (the node's connection
// is a channel inside the jump host's).
func TestFdStagingHoldsSSH(t *testing.T) {
	if r := sshlab.SkipReason(); r != "" {
		t.Skip(r)
	}
	t.Setenv("SSH_AUTH_SOCK", "") // no agent: its connection is not the staging's
	// host03 is the jump host; at VERBOSE its log names each login.
	lab := sshlab.Start(t, 4, sshlab.Options{LogLevel: "VERBOSE"})
	jumpLogins := func() int {
		log, err := lab.Hosts[3].Log()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(log, "Accepted publickey")
	}
	for _, jump := range []bool{false, true} {
		t.Run(fmt.Sprintf("jump=%v", jump), func(t *testing.T) {
			dir := t.TempDir()
			doc := labDoc{nodes: []int{0, 1}, remotes: []int{2}}.yaml(t, lab, dir)
			if jump {
				doc = strings.Replace(doc, "use_ssh_config: false", fmt.Sprintf("use_ssh_config: false, jump: {address: 127.0.0.1, port: %d}", lab.Hosts[3].Port), 1)
			}
			e := labEnv(t, doc, dir)
			ctx := context.Background()
			fresh, err := e.generate(keys.Authkey)
			if err != nil {
				t.Fatal(err)
			}
			ds, err := e.serverDeliveries(nil, fresh, deliver.WriteAlways)
			if err != nil {
				t.Fatal(err)
			}
			n := stagedNeed(e.Config.Hosts, []policies.FileKind{policies.Authkey}, e.Parallel, 0)
			before, logins := socketsOpen(t), jumpLogins()
			staged, results := e.engine().Stage(ctx, ds)
			held := socketsOpen(t) - before
			staged.Abort(ctx)
			if through := jumpLogins() - logins; (through == 3) != jump || (through == 0) == jump {
				t.Errorf("%d logins on the jump host while staging 3 nodes (jump: %v)", through, jump)
			}
			if err := deliver.Partial(results); err != nil {
				t.Fatal(err)
			}
			if want := n.sshHosts * fdsPerSSHHost; held != want || n.sshHosts != 3 {
				t.Errorf("staging held %d sockets; the count says %d (%d nodes)", held, want, n.sshHosts)
			}
		})
	}
}
