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
	doc := fmt.Sprintf("cluster: c\nstore: {type: file, path: store}\naudit: {path: audit.jsonl}\nssh: {known_hosts: %s, identity_files: [%s], use_ssh_config: false}\ncib: {port: 5403}\nnodes:\n%s", lab.KnownHosts, lab.IdentityFile, nodes.String())
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
	written := 0
	for _, h := range lab.Hosts {
		// The host's sessions end once they see the client gone: look
		// after they have, not while one may still be writing.
		sessions, err := hostProcs(h, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := waitExited(sessions, 10*time.Second); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
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

// slowInit starts pcmkeys init against two lab nodes whose every SSH
// session first sleeps 20 s, with command_timeout 30s, and returns the
// running command, with its stderr, once a session is asleep on a host.
func slowInit(t *testing.T) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	lab := sshlab.Start(t, 2, sshlab.Options{Slow: []int{0, 1}, SlowBy: 20 * time.Second})
	dir := t.TempDir()
	var nodes strings.Builder
	for _, h := range lab.Hosts {
		fmt.Fprintf(&nodes, "  - {name: %s, address: 127.0.0.1, port: %d}\n", h.Name, h.Port)
	}
	cfg := filepath.Join(dir, "pcmkeys.yaml")
	doc := fmt.Sprintf("cluster: c\nstore: {type: file, path: store}\naudit: {path: audit.jsonl}\nssh: {known_hosts: %s, identity_files: [%s], command_timeout: 30s, use_ssh_config: false}\ncib: {port: 5403}\nnodes:\n%s", lab.KnownHosts, lab.IdentityFile, nodes.String())
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pcmkeysBinary(t), "--config", cfg, "init")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	// The hosts' ForceCommand: sleep 20.000; eval "$SSH_ORIGINAL_COMMAND".
	if err := waitStarted(lab.Hosts, "sleep\x00", 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	return cmd, stderr
}

// waitExit waits at most limit for cmd and returns its exit code and how
// long it took.
func waitExit(t *testing.T, cmd *exec.Cmd, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("pcmkeys still running %s after the interrupt", limit)
		return 0, 0
	}
}

// TestInterruptEndsWithinCommandTimeout (issue 9): one Ctrl-C while every
// host hangs ends the run, cleaned up, with exit 130 within one
// command_timeout (30 s), not when the hosts answer.
func TestInterruptEndsWithinCommandTimeout(t *testing.T) {
	cmd, _ := slowInit(t)
	cmd.Process.Signal(syscall.SIGINT)
	code, took := waitExit(t, cmd, 40*time.Second)
	t.Logf("exit %d, %s after one SIGINT", code, took.Round(100*time.Millisecond))
	if code != 130 {
		t.Errorf("exit %d after SIGINT, want 130", code)
	}
}

// TestInterruptTwiceExitsAtOnce (issue 9): a second Ctrl-C exits at once.
func TestInterruptTwiceExitsAtOnce(t *testing.T) {
	cmd, stderr := slowInit(t)
	cmd.Process.Signal(syscall.SIGINT)
	// The second interrupt must come after the first was taken.
	if !stderr.WaitFor("pcmkeys: interrupted:", 10*time.Second) {
		t.Fatalf("no word of the first SIGINT on stderr:\n%s", stderr.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	code, took := waitExit(t, cmd, 5*time.Second)
	t.Logf("exit %d, %s after the second SIGINT", code, took.Round(100*time.Millisecond))
	if code != 130 {
		t.Errorf("exit %d after two SIGINTs, want 130", code)
	}
}
