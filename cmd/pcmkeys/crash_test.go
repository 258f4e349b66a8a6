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

	"github.com/pcmkeys/pcmkeys/internal/testroot"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/filestore"
)

// crashTarget is a file a watcher keeps looking at.
type crashTarget struct {
	path     string
	uid, gid int
	kind     string // cib, authkey, client
}

// TestCrashConsistency kills pcmkeys with SIGKILL at random moments of
// rotate --cib, rotate --authkey and push (PCMKEYS_CRASH_POINTS, default
// 100; PCMKEYS_CRASH_SEED replays a run). While each run works, a watcher
// polls every target file: it must always be a regular file with its
// policy's owner and mode 0600, holding exactly some version the store
// has — never partial. After each kill, push must succeed (breaking the
// dead run's lock), leave no temporary file, and status must be clean.
func TestCrashConsistency(t *testing.T) {
	points := 100
	if v, err := strconv.Atoi(os.Getenv("PCMKEYS_CRASH_POINTS")); err == nil {
		points = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("PCMKEYS_CRASH_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("crash seed %d (replay: PCMKEYS_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	dir := t.TempDir()
	bin := filepath.Join(dir, "pcmkeys")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var nodes []*testroot.Root
	var hosts strings.Builder
	for i := 0; i < 3; i++ {
		r := testroot.New(t)
		nodes = append(nodes, r)
		fmt.Fprintf(&hosts, "  - {name: n%d, local: true, root: %s}\n", i, r.Dir)
	}
	ws := testroot.New(t)
	cfg := filepath.Join(dir, "pcmkeys.yaml")
	doc := fmt.Sprintf("cluster: crash\nstore: {type: file, path: store}\naudit: {path: audit.jsonl}\ncib: {port: 5403}\nnodes:\n%sclients:\n  - {name: ws, local: true, root: %s}\n", hosts.String(), ws.Dir)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) error {
		out, err := exec.Command(bin, append([]string{"--config", cfg}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pcmkeys %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, step := range [][]string{{"init"}, {"onboard", "alice", "--client", "ws"}, {"onboard", "bob", "--client", "ws"}} {
		if err := run(step...); err != nil {
			t.Fatal(err)
		}
	}
	var targets []crashTarget
	for _, r := range nodes {
		targets = append(targets,
			crashTarget{r.Path("etc/pacemaker/cib-credentials"), r.Hacluster, r.Haclient, "cib"},
			crashTarget{r.Path("etc/pacemaker/authkey"), r.Hacluster, r.Haclient, "authkey"})
	}
	targets = append(targets,
		crashTarget{ws.Path("home/alice/.pcmkeys/crash.key"), ws.Alice, ws.Alice, "client"},
		crashTarget{ws.Path("home/bob/.pcmkeys/crash.key"), ws.Bob, ws.Bob, "client"})

	ops := [][]string{{"rotate", "--cib"}, {"rotate", "--authkey"}, {"push"}}
	// Calibrate: how long each operation takes when left alone.
	longest := map[string]time.Duration{}
	for _, op := range ops {
		start := time.Now()
		if err := run(op...); err != nil {
			t.Fatal(err)
		}
		longest[op[0]+op[len(op)-1]] = time.Since(start)
	}
	t.Logf("undisturbed: %v", longest)

	stats := map[string]int{}
	for i := 0; i < points; i++ {
		op := ops[rng.IntN(len(ops))]
		if op[0] == "push" {
			drift(t, rng, targets, dir)
		}
		delay := time.Duration(rng.Int64N(int64(longest[op[0]+op[len(op)-1]]*6/5) + 1))
		seen, stop := watch(targets)
		cmd := exec.Command(bin, append([]string{"--config", cfg}, op...)...)
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
		valid := validContents(t, filepath.Join(dir, "store"), ws)
		for p, contents := range seen {
			for c := range contents {
				if !valid[kindOf(targets, p)][c] {
					violations = append(violations, fmt.Sprintf("%s held content that is no version in the store (%d bytes)", p, len(c)))
				}
			}
		}
		if len(violations) > 0 {
			t.Fatalf("point %d (%s after %v, seed %d):\n%s", i, strings.Join(op, " "), delay, seed, strings.Join(violations, "\n"))
		}
		if err := run("push"); err != nil {
			t.Fatalf("point %d (%s after %v, seed %d): push after the kill: %v", i, strings.Join(op, " "), delay, seed, err)
		}
		if err := run("status"); err != nil {
			t.Fatalf("point %d (%s after %v, seed %d): status after push: %v", i, strings.Join(op, " "), delay, seed, err)
		}
		for _, tg := range targets {
			ents, _ := os.ReadDir(filepath.Dir(tg.path))
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					t.Fatalf("point %d (seed %d): %s left in %s", i, seed, e.Name(), filepath.Dir(tg.path))
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
func drift(t *testing.T, rng *rand.Rand, targets []crashTarget, dir string) {
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

// validContents renders every version the store has ever held, as each
// kind of file holds it.
func validContents(t *testing.T, storeDir string, ws *testroot.Root) map[string]map[string]bool {
	t.Helper()
	s, err := filestore.Open(storeDir, storeDir+".agekey", filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out := map[string]map[string]bool{"cib": {}, "authkey": {}, "client": {}}
	for _, id := range []keystore.ID{keystore.CIB("hacluster"), keystore.AuthkeyID} {
		hist, err := s.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range hist {
			c, err := s.GetVersion(ctx, id, v.Version)
			if err != nil {
				t.Fatal(err)
			}
			if id == keystore.AuthkeyID {
				out["authkey"][string(c.Key)] = true
			} else {
				out["cib"]["hacluster:"+hex.EncodeToString(c.Key)+"\n"] = true
				out["client"][hex.EncodeToString(c.Key)] = true
			}
		}
	}
	return out
}
