package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
	"github.com/pcmkeys/pcmkeys/internal/testroot"
	"github.com/pcmkeys/pcmkeys/internal/vaultlab"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/filestore"
	"github.com/pcmkeys/pcmkeys/keystore/vaultstore"
)

// crashTarget is a file a watcher keeps looking at.
type crashTarget struct {
	path     string
	uid, gid int
	kind     string // cib, authkey, client
}

// crashCluster is a cluster for the crash test: its config, the
// environment pcmkeys needs, the files to watch and its store.
type crashCluster struct {
	bin, cfg string
	client   string // the admins' client host
	env      []string
	targets  []crashTarget
	store    func(t *testing.T) keystore.Store
}

func (c *crashCluster) command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, append([]string{"--config", c.cfg}, args...)...)
	cmd.Env = append(os.Environ(), c.env...)
	return cmd
}

func (c *crashCluster) run(args ...string) error {
	out, err := c.command(args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pcmkeys %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// pcmkeysBinary builds the command once per test process (TestMain
// removes it).
func pcmkeysBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pcmkeys-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "pcmkeys")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func crashPoints(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// TestCrashConsistency kills pcmkeys with SIGKILL at random moments of
// rotate --cib, rotate --authkey and push on local hosts with the file
// store (PCMKEYS_CRASH_POINTS, default 100; PCMKEYS_CRASH_SEED replays a
// run). See runCrash.
func TestCrashConsistency(t *testing.T) {
	dir := t.TempDir()
	var nodes []*testroot.Root
	var hosts strings.Builder
	for i := 0; i < 3; i++ {
		r := testroot.New(t)
		nodes = append(nodes, r)
		fmt.Fprintf(&hosts, "  - {name: n%d, local: true, root: %s}\n", i, r.Dir)
	}
	ws := testroot.New(t)
	c := &crashCluster{bin: pcmkeysBinary(t), cfg: filepath.Join(dir, "pcmkeys.yaml"), client: "ws"}
	doc := fmt.Sprintf("cluster: crash\nstore: {type: file, path: store}\naudit: {path: audit.jsonl}\ncib: {port: 5403}\nnodes:\n%sclients:\n  - {name: ws, local: true, root: %s}\n", hosts.String(), ws.Dir)
	if err := os.WriteFile(c.cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, r := range nodes {
		c.targets = append(c.targets,
			crashTarget{r.Path("etc/pacemaker/cib-credentials"), r.Hacluster, r.Haclient, "cib"},
			crashTarget{r.Path("etc/pacemaker/authkey"), r.Hacluster, r.Haclient, "authkey"})
	}
	c.targets = append(c.targets,
		crashTarget{ws.Path("home/alice/.pcmkeys/crash.key"), ws.Alice, ws.Alice, "client"},
		crashTarget{ws.Path("home/bob/.pcmkeys/crash.key"), ws.Bob, ws.Bob, "client"})
	storeDir := filepath.Join(dir, "store")
	c.store = func(t *testing.T) keystore.Store {
		s, err := filestore.Open(storeDir, storeDir+".agekey", filestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	runCrash(t, c, crashPoints("PCMKEYS_CRASH_POINTS", 100))
}

// TestCrashConsistencyLab is the same over SSH to real sshd lab hosts,
// with the real Vault as the store (PCMKEYS_CRASH_POINTS_LAB, default 30).
// Each lab host writes under a root prefix on the machine's filesystem, so
// the watcher can poll its files while the sessions write them.
func TestCrashConsistencyLab(t *testing.T) {
	lab := sshlab.Start(t, 4, sshlab.Options{})
	srv := vaultlab.Start(t)
	mount := srv.MountKV2(t)
	dir := t.TempDir()
	var roots []string
	var hosts strings.Builder
	for i, h := range lab.Hosts {
		r, err := os.MkdirTemp("", "pcmkeys-crashlab-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(r) })
		os.Chmod(r, 0o755)
		for _, u := range []struct {
			name string
			id   int
		}{{"alice", sshlab.UIDAlice}, {"bob", sshlab.UIDBob}} {
			home := filepath.Join(r, "home", u.name)
			os.MkdirAll(home, 0o700)
			os.Chmod(filepath.Dir(home), 0o755)
			os.Chown(home, u.id, u.id)
		}
		roots = append(roots, r)
		if i < 3 {
			fmt.Fprintf(&hosts, "  - {name: %s, address: 127.0.0.1, port: %d, root: %s}\n", h.Name, h.Port, r)
		}
	}
	c := &crashCluster{bin: pcmkeysBinary(t), cfg: filepath.Join(dir, "pcmkeys.yaml"), client: "host03", env: []string{"VAULT_TOKEN=" + srv.RootToken}}
	doc := fmt.Sprintf("cluster: crash\nstore: {type: vault, address: %q, mount: %s}\naudit: {path: audit.jsonl}\nssh: {known_hosts: %s, identity_files: [%s], use_ssh_config: false}\ncib: {port: 5403}\nnodes:\n%sclients:\n  - {name: host03, address: 127.0.0.1, port: %d, root: %s}\n",
		srv.Addr, mount, lab.KnownHosts, lab.IdentityFile, hosts.String(), lab.Hosts[3].Port, roots[3])
	if err := os.WriteFile(c.cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, r := range roots[:3] {
		c.targets = append(c.targets,
			crashTarget{filepath.Join(r, "etc/pacemaker/cib-credentials"), sshlab.UIDHacluster, sshlab.GIDHaclient, "cib"},
			crashTarget{filepath.Join(r, "etc/pacemaker/authkey"), sshlab.UIDHacluster, sshlab.GIDHaclient, "authkey"})
	}
	c.targets = append(c.targets,
		crashTarget{filepath.Join(roots[3], "home/alice/.pcmkeys/crash.key"), sshlab.UIDAlice, sshlab.UIDAlice, "client"},
		crashTarget{filepath.Join(roots[3], "home/bob/.pcmkeys/crash.key"), sshlab.UIDBob, sshlab.UIDBob, "client"})
	c.store = func(t *testing.T) keystore.Store {
		s, err := vaultstore.Open(context.Background(), vaultstore.Options{Address: srv.Addr, Mount: mount, Prefix: "pcmkeys/crash", Auth: vaultstore.Auth{Token: srv.RootToken}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	runCrash(t, c, crashPoints("PCMKEYS_CRASH_POINTS_LAB", 30))
}

// runCrash sets a cluster up (init, onboard alice and bob), then kills
// pcmkeys at random moments of rotate --cib, rotate --authkey and push.
// While each run works, a watcher polls every target file: it must always
// be a regular file with its policy's owner and mode 0600, holding exactly
// some version the store has — never partial. After each kill, push must
// succeed (breaking the dead run's lock), leave no temporary file, and
// status must be clean.
func runCrash(t *testing.T, c *crashCluster, points int) {
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("PCMKEYS_CRASH_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("crash seed %d (replay: PCMKEYS_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	valid := newValidContents()
	for _, step := range [][]string{{"init"}, {"onboard", "alice", "--client", c.client}, {"onboard", "bob", "--client", c.client}} {
		if err := c.run(step...); err != nil {
			t.Fatal(err)
		}
		valid.add(t, c.store(t))
	}
	ops := [][]string{{"rotate", "--cib"}, {"rotate", "--authkey"}, {"push"}}
	// Calibrate: how long each operation takes when left alone.
	longest := map[string]time.Duration{}
	for _, op := range ops {
		start := time.Now()
		if err := c.run(op...); err != nil {
			t.Fatal(err)
		}
		longest[op[0]+op[len(op)-1]] = time.Since(start)
		valid.add(t, c.store(t))
	}
	t.Logf("undisturbed: %v", longest)

	stats := map[string]int{}
	for i := 0; i < points; i++ {
		op := ops[rng.IntN(len(ops))]
		if op[0] == "push" {
			drift(t, rng, c.targets)
		}
		delay := time.Duration(rng.Int64N(int64(longest[op[0]+op[len(op)-1]]*6/5) + 1))
		seen, stop := watch(c.targets)
		cmd := c.command(op...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		violations := stop()
		if ee, ok := err.(*exec.ExitError); ok && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			stats["killed mid-run"]++
		} else {
			stats["finished before the kill"]++
		}
		valid.add(t, c.store(t))
		for p, contents := range seen {
			for content := range contents {
				if !valid.files[kindOf(c.targets, p)][content] {
					violations = append(violations, fmt.Sprintf("%s held content that is no version in the store (%d bytes)", p, len(content)))
				}
			}
		}
		where := fmt.Sprintf("point %d (%s after %v, seed %d)", i, strings.Join(op, " "), delay, seed)
		if len(violations) > 0 {
			t.Fatalf("%s:\n%s", where, strings.Join(violations, "\n"))
		}
		if err := c.run("push"); err != nil {
			t.Fatalf("%s: push after the kill: %v", where, err)
		}
		if err := c.run("status"); err != nil {
			t.Fatalf("%s: status after push: %v", where, err)
		}
		for _, tg := range c.targets {
			ents, _ := os.ReadDir(filepath.Dir(tg.path))
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					t.Fatalf("%s: %s left in %s", where, e.Name(), filepath.Dir(tg.path))
				}
			}
		}
	}
	t.Logf("%d crash points (seed %d): %v; every file always whole with its owner and mode; every rerun converged", points, seed, stats)
}

func kindOf(targets []crashTarget, path string) string {
	for _, t := range targets {
		if t.path == path {
			return t.kind
		}
	}
	return ""
}

// drift puts an older, valid version into one target (atomically, as an
// operator's mistake might), so that push has something to repair.
func drift(t *testing.T, rng *rand.Rand, targets []crashTarget) {
	t.Helper()
	tg := targets[rng.IntN(len(targets))]
	old, err := os.ReadFile(tg.path)
	if err != nil {
		return
	}
	// Rewrite the same content with a fresh inode: push sees it as in
	// sync or repairs whatever differs; the watcher sees a valid file.
	tmp := filepath.Join(filepath.Dir(tg.path), "drift.tmp")
	if err := os.WriteFile(tmp, old, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(tmp, tg.uid, tg.gid)
	if err := os.Rename(tmp, tg.path); err != nil {
		t.Fatal(err)
	}
}

// watch polls the targets until stopped; it returns every content seen
// per path, and stop returns the violations of owner, mode and type.
func watch(targets []crashTarget) (map[string]map[string]bool, func() []string) {
	seen := map[string]map[string]bool{}
	for _, tg := range targets {
		seen[tg.path] = map[string]bool{}
	}
	var violations []string
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for _, tg := range targets {
				var st syscall.Stat_t
				if err := syscall.Lstat(tg.path, &st); err != nil {
					mu.Lock()
					violations = append(violations, fmt.Sprintf("%s vanished: %v", tg.path, err))
					mu.Unlock()
					continue
				}
				if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Mode&0o7777 != 0o600 || int(st.Uid) != tg.uid || int(st.Gid) != tg.gid {
					mu.Lock()
					violations = append(violations, fmt.Sprintf("%s was %o %d:%d", tg.path, st.Mode, st.Uid, st.Gid))
					mu.Unlock()
				}
				if b, err := os.ReadFile(tg.path); err == nil {
					mu.Lock()
					seen[tg.path][string(b)] = true
					mu.Unlock()
				}
			}
		}
	}()
	return seen, func() []string {
		cancel()
		<-done
		return violations
	}
}

// validContents is every version the store has held, as each kind of file
// holds it: add is called after every run and keeps the current versions
// (a run makes at most one version of each credential; add fails the test
// if the store's history holds a version it did not see).
type validContents struct {
	files    map[string]map[string]bool // kind -> content
	versions map[keystore.ID]map[int]bool
}

func newValidContents() *validContents {
	return &validContents{
		files:    map[string]map[string]bool{"cib": {}, "authkey": {}, "client": {}},
		versions: map[keystore.ID]map[int]bool{},
	}
}

func (v *validContents) add(t *testing.T, s keystore.Store) {
	t.Helper()
	defer s.Close()
	ctx := context.Background()
	for _, id := range []keystore.ID{keystore.CIB("hacluster"), keystore.AuthkeyID} {
		c, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if v.versions[id] == nil {
			v.versions[id] = map[int]bool{}
		}
		v.versions[id][c.Version.Version] = true
		if id == keystore.AuthkeyID {
			v.files["authkey"][string(c.Key)] = true
		} else {
			v.files["cib"]["hacluster:"+hex.EncodeToString(c.Key)+"\n"] = true
			v.files["client"][hex.EncodeToString(c.Key)] = true
		}
		hist, err := s.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != len(v.versions[id]) {
			t.Fatalf("%s has %d versions, %d of them seen: a run made more than one", id, len(hist), len(v.versions[id]))
		}
	}
}
