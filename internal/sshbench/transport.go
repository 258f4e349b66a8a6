package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// The transport table: pcmkeys's fan-out (the distribute package) against
// OpenSSH on 10, 50 and 100 loopback hosts.

type workerSpec struct {
	KnownHosts string `json:"known_hosts"`
	Identity   string `json:"identity"`
	Ports      []int  `json:"ports"`
	Payload    string `json:"payload"`
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
				r, err := median(runs, j.argv)
				if err != nil {
					return fmt.Errorf("%s on %d hosts: %w", j.name, n, err)
				}
				fmt.Printf("%-13s %6d %6d %12s %9.1f MB\n", j.name, n, size, r.wall.Round(time.Millisecond), float64(r.rss)/1024)
			}
		}
	}
	ports := make([]string, 100)
	for i := range ports {
		ports[i] = strconv.Itoa(lab.Hosts[i].Port)
	}
	floor := []string{"sh", "-c", fmt.Sprintf(`printf '%%s\n' %s | xargs -P 100 -I{} %s -p {} 127.0.0.1 true`, strings.Join(ports, " "), sshCmd)}
	r, err := median(runs, floor)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	fmt.Printf("%-13s %6d %6s %12s %9.1f MB\n", "floor", 100, "-", r.wall.Round(time.Millisecond), float64(r.rss)/1024)
	// The same floor with the key exchange pcmkeys's Go client uses
	// (curve25519), instead of OpenSSH's default post-quantum hybrid.
	floorKex := []string{"sh", "-c", fmt.Sprintf(`printf '%%s\n' %s | xargs -P 100 -I{} %s -o KexAlgorithms=curve25519-sha256 -p {} 127.0.0.1 true`, strings.Join(ports, " "), sshCmd)}
	r, err = median(runs, floorKex)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	fmt.Printf("%-13s %6d %6s %12s %9.1f MB\n", "floor-x25519", 100, "-", r.wall.Round(time.Millisecond), float64(r.rss)/1024)
	return nil
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
