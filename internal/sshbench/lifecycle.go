package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

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
		r, err := measure(run("rotate", "--cib"))
		if err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
		fmt.Printf("%-28s %6d %12s %9.1f MB\n", "rotate --cib (2 admins)", 100, r.wall.Round(time.Millisecond), float64(r.rss)/1024)
		r, err = measure(run("revoke", "alice"))
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		fmt.Printf("%-28s %6d %12s %9.1f MB\n", "revoke alice", 100, r.wall.Round(time.Millisecond), float64(r.rss)/1024)
		if err := quiet(run("revoke", "bob")...); err != nil {
			return err
		}
	}
	return nil
}
