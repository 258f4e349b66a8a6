// Command sshbench measures pcmkeys's SSH fan-out against OpenSSH on a lab
// of real sshd hosts (internal/sshlab): it pushes a 4096-byte and a 64-byte
// file to 10, 50 and 100 hosts and prints wall time and peak memory for
//
//   - pcmkeys: the distribute package's fan-out (one connection and one
//     session per host, --parallel equal to the host count), in a process
//     of its own;
//   - ssh-seq: a shell loop of the system's ssh client, one host after the
//     other;
//   - ssh-xargs: the same ssh command run 100-wide with xargs -P 100;
//   - and, once, the floor: ssh HOST true, 100-wide.
//
// Peak memory is the largest total RSS of the job's process tree, sampled
// every 20 ms from /proc. Run as root on a machine with openssh-server:
//
//	go run ./internal/sshbench            # the full table
//	go run ./internal/sshbench -runs 3    # the median of 3 runs per cell
//	go run ./internal/sshbench -lifecycle -runs 3   # pcmkeys rotate and revoke on 100 nodes
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// sampleRSS turns memory sampling on.
var sampleRSS = true

type workerSpec struct {
	KnownHosts string `json:"known_hosts"`
	Identity   string `json:"identity"`
	Ports      []int  `json:"ports"`
	Payload    string `json:"payload"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := worker(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		return
	}
	runs := flag.Int("runs", 1, "runs per cell; the median is printed")
	lifecycle := flag.Bool("lifecycle", false, "also time pcmkeys rotate and revoke on 100 nodes")
	noSample := flag.Bool("no-rss", false, "do not sample memory (to see what sampling costs)")
	flag.Parse()
	if r := sshlab.SkipReason(); r != "" {
		fmt.Fprintln(os.Stderr, "sshbench:", r)
		os.Exit(2)
	}
	sampleRSS = !*noSample
	if *lifecycle {
		if err := benchLifecycle(*runs); err != nil {
			fmt.Fprintln(os.Stderr, "sshbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := bench(*runs); err != nil {
		fmt.Fprintln(os.Stderr, "sshbench:", err)
		os.Exit(1)
	}
}

func bench(runs int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	t0 := time.Now()
	lab, err := sshlab.New(100, sshlab.Options{})
	if err != nil {
		return err
	}
	defer lab.Stop()
	fmt.Printf("lab: 100 sshd hosts started in %s\n", time.Since(t0).Round(time.Millisecond))
	sshArgs := []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + lab.KnownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-i", lab.IdentityFile, "-o", "ControlMaster=no", "-l", "root"}
	sshCmd := "ssh " + strings.Join(quoteAll(sshArgs), " ")

	fmt.Printf("\n%-13s %6s %6s %12s %12s\n", "job", "hosts", "bytes", "wall", "peak RSS")
	for _, size := range []int{4096, 64} {
		payload := filepath.Join(lab.Dir, fmt.Sprintf("payload-%d", size))
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(payload, b, 0o600); err != nil {
			return err
		}
		for _, n := range []int{10, 50, 100} {
			ports := make([]string, n)
			var portInts []int
			for i := 0; i < n; i++ {
				ports[i] = strconv.Itoa(lab.Hosts[i].Port)
				portInts = append(portInts, lab.Hosts[i].Port)
			}
			spec := filepath.Join(lab.Dir, fmt.Sprintf("spec-%d-%d.json", size, n))
			js, _ := json.Marshal(workerSpec{KnownHosts: lab.KnownHosts, Identity: lab.IdentityFile, Ports: portInts, Payload: payload})
			if err := os.WriteFile(spec, js, 0o600); err != nil {
				return err
			}
			jobs := []struct {
				name string
				argv []string
			}{
				{"pcmkeys", []string{self, "worker", spec}},
				{"ssh-seq", []string{"sh", "-c", fmt.Sprintf(`for p in %s; do %s -p "$p" 127.0.0.1 'cat > /etc/pacemaker/bench' < %s || exit 1; done`, strings.Join(ports, " "), sshCmd, payload)}},
				{"ssh-xargs", []string{"sh", "-c", fmt.Sprintf(`printf '%%s\n' %s | xargs -P 100 -I{} sh -c 'exec %s -p "$1" 127.0.0.1 "cat > /etc/pacemaker/bench" < %s' _ {}`, strings.Join(ports, " "), strings.ReplaceAll(sshCmd, "'", `'\''`), payload)}},
			}
			for _, j := range jobs {
				wall, rss, err := median(runs, j.argv)
				if err != nil {
					return fmt.Errorf("%s on %d hosts: %w", j.name, n, err)
				}
				fmt.Printf("%-13s %6d %6d %12s %9.1f MB\n", j.name, n, size, wall.Round(time.Millisecond), float64(rss)/1024)
			}
		}
	}
	ports := make([]string, 100)
	for i := range ports {
		ports[i] = strconv.Itoa(lab.Hosts[i].Port)
	}
	floor := []string{"sh", "-c", fmt.Sprintf(`printf '%%s\n' %s | xargs -P 100 -I{} %s -p {} 127.0.0.1 true`, strings.Join(ports, " "), sshCmd)}
	wall, rss, err := median(runs, floor)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	fmt.Printf("%-13s %6d %6s %12s %9.1f MB\n", "floor", 100, "-", wall.Round(time.Millisecond), float64(rss)/1024)
	// The same floor with the key exchange pcmkeys's Go client uses
	// (curve25519), instead of OpenSSH's default post-quantum hybrid.
	floorKex := []string{"sh", "-c", fmt.Sprintf(`printf '%%s\n' %s | xargs -P 100 -I{} %s -o KexAlgorithms=curve25519-sha256 -p {} 127.0.0.1 true`, strings.Join(ports, " "), sshCmd)}
	wall, rss, err = median(runs, floorKex)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	fmt.Printf("%-13s %6d %6s %12s %9.1f MB\n", "floor-x25519", 100, "-", wall.Round(time.Millisecond), float64(rss)/1024)
	return nil
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

// median runs argv runs times and returns the median wall time and the
// median of the peak RSS (KB).
func median(runs int, argv []string) (time.Duration, int64, error) {
	var walls []time.Duration
	var rsss []int64
	for i := 0; i < runs; i++ {
		w, r, err := measure(argv)
		if err != nil {
			return 0, 0, err
		}
		walls = append(walls, w)
		rsss = append(rsss, r)
	}
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	sort.Slice(rsss, func(i, j int) bool { return rsss[i] < rsss[j] })
	return walls[runs/2], rsss[runs/2], nil
}

// measure runs argv and samples the total RSS of its process tree.
func measure(argv []string) (time.Duration, int64, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	var peak int64
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for sampleRSS {
			if r := treeRSS(cmd.Process.Pid); r > 0 {
				mu.Lock()
				peak = max(peak, r)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	wall := time.Since(start)
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, stderr.String())
	}
	return wall, peak, err
}

// treeRSS sums VmRSS (KB) over pid and its descendants, found through
// /proc/PID/task/*/children, so a sample reads only the job's processes.
func treeRSS(root int) int64 {
	var total int64
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		p := "/proc/" + strconv.Itoa(pid)
		if b, err := os.ReadFile(p + "/status"); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
					kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
					total += kb
				}
			}
		}
		tasks, _ := os.ReadDir(p + "/task")
		for _, t := range tasks {
			b, err := os.ReadFile(p + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			for _, c := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(c); err == nil {
					queue = append(queue, n)
				}
			}
		}
	}
	return total
}

// worker pushes the payload to every port with the distribute package.
func worker(specPath string) error {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec workerSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return err
	}
	payload, err := os.ReadFile(spec.Payload)
	if err != nil {
		return err
	}
	d, err := distribute.NewSSHDialer(distribute.SSHConfig{User: "root", KnownHosts: spec.KnownHosts, IdentityFiles: []string{spec.Identity}, ConnectTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer d.Close()
	f := distribute.File{Path: "/etc/pacemaker/bench", Content: payload, Owner: "hacluster", Group: "haclient", Mode: 0o600}
	ctx := context.Background()
	errs := distribute.Each(ctx, spec.Ports, len(spec.Ports), func(ctx context.Context, port int) error {
		h, err := d.Open(ctx, strconv.Itoa(port), distribute.SSHEndpoint{Address: "127.0.0.1", Port: port}, "")
		if err != nil {
			return err
		}
		defer h.Close()
		return distribute.Write(ctx, h, f)
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// benchLifecycle times the pcmkeys binary's rotate and revoke on a cluster
// of 100 lab nodes (per-user mode, a file store, admins working from
// host00), each run a fresh process.
func benchLifecycle(runs int) error {
	dir, err := os.MkdirTemp("", "pcmkeys-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pcmkeys")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pcmkeys").CombinedOutput(); err != nil {
		return fmt.Errorf("build pcmkeys (run from the repository's root): %v\n%s", err, out)
	}
	lab, err := sshlab.New(100, sshlab.Options{})
	if err != nil {
		return err
	}
	defer lab.Stop()
	var nodes strings.Builder
	for _, h := range lab.Hosts {
		fmt.Fprintf(&nodes, "  - {name: %s, address: 127.0.0.1, port: %d}\n", h.Name, h.Port)
	}
	cfg := filepath.Join(dir, "pcmkeys.yaml")
	doc := fmt.Sprintf("cluster: bench\nstore: {type: file, path: store}\nidentity_mode: per-user\naudit: {path: audit.jsonl}\nssh: {known_hosts: %s, identity_files: [%s]}\ncib: {port: 5403}\nnodes:\n%s", lab.KnownHosts, lab.IdentityFile, nodes.String())
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		return err
	}
	run := func(args ...string) []string {
		return append([]string{bin, "--config", cfg, "--parallel", "100"}, args...)
	}
	quiet := func(args ...string) error {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(args[3:], " "), err, out)
		}
		return nil
	}
	if err := quiet(run("init")...); err != nil {
		return err
	}
	fmt.Printf("\n%-28s %6s %12s %12s\n", "pcmkeys on 100 nodes", "hosts", "wall", "peak RSS")
	for i := 0; i < runs; i++ {
		for _, u := range []string{"alice", "bob"} {
			if err := quiet(run("onboard", u, "--client", "host00")...); err != nil {
				return err
			}
		}
		w, r, err := measure(run("rotate", "--cib"))
		if err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
		fmt.Printf("%-28s %6d %12s %9.1f MB\n", "rotate --cib (2 admins)", 100, w.Round(time.Millisecond), float64(r)/1024)
		w, r, err = measure(run("revoke", "alice"))
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		fmt.Printf("%-28s %6d %12s %9.1f MB\n", "revoke alice", 100, w.Round(time.Millisecond), float64(r)/1024)
		if err := quiet(run("revoke", "bob")...); err != nil {
			return err
		}
	}
	return nil
}
