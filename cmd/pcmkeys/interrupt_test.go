package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// TestInterruptLeavesNoTempFile runs pcmkeys init against 12 lab hosts two
// at a time, sends SIGINT once the first hosts are done, and then looks on
// every host for a temporary file: there must be none, and every authkey
// present must be complete.
func TestInterruptLeavesNoTempFile(t *testing.T) {
	lab := sshlab.Start(t, 12, sshlab.Options{})
	dir := t.TempDir()
	bin := pcmkeysBinary(t)
	var nodes strings.Builder
	for _, h := range lab.Hosts {
		fmt.Fprintf(&nodes, "  - {name: %s, address: 127.0.0.1, port: %d}\n", h.Name, h.Port)
	}
	cfg := filepath.Join(dir, "pcmkeys.yaml")
	doc := fmt.Sprintf("cluster: c\nstore: {type: file, path: store}\nssh: {known_hosts: %s, identity_files: [%s]}\ncib: {port: 5403}\nnodes:\n%s", lab.KnownHosts, lab.IdentityFile, nodes.String())
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg, "--parallel", "2", "init")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var log strings.Builder
	interrupted := false
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if !interrupted && strings.HasPrefix(sc.Text(), "pcmkeys: [2/12]") {
			cmd.Process.Signal(syscall.SIGINT)
			interrupted = true
		}
	}
	err = cmd.Wait()
	if !interrupted {
		t.Fatalf("the run ended before it could be interrupted:\n%s", log.String())
	}
	if err == nil {
		t.Errorf("an interrupted run exited 0:\n%s", log.String())
	}
	time.Sleep(100 * time.Millisecond) // sessions the server still runs
	written := 0
	for _, h := range lab.Hosts {
		out, err := h.Exec(t.Context(), "ls -A /etc/pacemaker; [ ! -f /etc/pacemaker/authkey ] || wc -c < /etc/pacemaker/authkey")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, ".pcmkeys-") {
			t.Errorf("%s holds a temporary file after the interrupt: %q", h.Name, out)
		}
		if strings.Contains(out, "authkey") {
			written++
			if !strings.HasSuffix(out, "4096\n") {
				t.Errorf("%s has an incomplete authkey: %q", h.Name, out)
			}
		}
	}
	if written == len(lab.Hosts) {
		t.Errorf("every host was written: the interrupt came too late to test anything\n%s", log.String())
	}
	t.Logf("%d of %d hosts written before the interrupt", written, len(lab.Hosts))
}
