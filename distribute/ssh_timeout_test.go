package distribute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// freezeScript makes sha256sum on a lab host stop its whole process group
// (the remote command and everything it started, as kill -STOP would)
// while /root/freeze exists. Every write hashes what it staged, so a
// frozen write has its temporary file in place. The bind mount stays in
// the host's private mount namespace.
const freezeScript = `set -e
cp /usr/bin/sha256sum /root/sha256sum.real
cat > /root/sha256sum.wrap <<'EOF'
#!/bin/sh
if [ -e /root/freeze ]; then kill -STOP 0; fi
exec /root/sha256sum.real "$@"
EOF
chmod 755 /root/sha256sum.wrap
mount --bind /root/sha256sum.wrap /usr/bin/sha256sum
`

func installFreeze(t *testing.T, h *sshlab.Host) {
	t.Helper()
	onLab(t, h, freezeScript)
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mi, []byte(" /usr/bin/sha256sum ")) {
		t.Fatal("the freeze wrapper leaked out of the lab host's mount namespace")
	}
}

// hostProcs returns the pids of the processes in a lab host's mount
// namespace whose arguments contain every one of words.
func hostProcs(t *testing.T, h *sshlab.Host, words ...string) []int {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", h.PID()))
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if got, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/mnt")); err != nil || got != ns {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		all := true
		for _, w := range words {
			all = all && bytes.Contains(cmdline, []byte(w))
		}
		if all {
			out = append(out, pid)
		}
	}
	return out
}

// within fails the test if d exceeds limit: a correctness bound (the
// operation ended), not a benchmark.
func within(t *testing.T, what string, d, limit time.Duration) {
	t.Helper()
	if d > limit {
		t.Errorf("%s took %s, want it to end within %s", what, d.Round(time.Millisecond), limit)
	}
}

const labTimeout = 2 * time.Second

func authkeyFile(content string) File {
	return File{Path: "/etc/pacemaker/authkey", Content: []byte(content), Owner: "hacluster", Group: "haclient", Mode: 0o600}
}

// TestSSHStoppedCommand: a remote command stopped with SIGSTOP ends the
// operation within command_timeout plus the close grace, with ErrTimeout;
// the temporary file is removed over a fresh connection and the stopped
// command killed, so it cannot write once resumed; the host then fails
// fast. Also through sudo, where the cleanup must spare its own sudo.
func TestSSHStoppedCommand(t *testing.T) {
	lab := sshlab.Start(t, 2, sshlab.Options{SudoOnly: []int{1}})
	for _, tc := range []struct {
		name string
		host *sshlab.Host
		mod  func(*SSHConfig)
	}{
		{"root", lab.Hosts[0], nil},
		{"sudo", lab.Hosts[1], func(c *SSHConfig) { c.User, c.Sudo = "deploy", true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.host
			d := labDialer(t, lab, func(c *SSHConfig) {
				c.CommandTimeout = labTimeout
				if tc.mod != nil {
					tc.mod(c)
				}
			})
			h := labOpen(t, d, host)
			ctx := context.Background()
			old := authkeyFile("old key")
			if err := Write(ctx, h, old); err != nil {
				t.Fatal(err)
			}
			installFreeze(t, host)
			onLab(t, host, "touch /root/freeze")

			// One-step write: frozen after staging, before the rename.
			start := time.Now()
			err := Write(ctx, h, authkeyFile("new key"))
			elapsed := time.Since(start)
			if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "no answer within 2s") {
				t.Fatalf("frozen write: %v", err)
			}
			// The command timeout, the grace, and the cleanup over a new
			// connection (a login and one command).
			t.Logf("a frozen write ended after %s: %v", elapsed.Round(time.Millisecond), err)
			within(t, "a frozen write", elapsed, labTimeout+closeGrace+8*time.Second)
			if ls := onLab(t, host, "ls -A /etc/pacemaker"); ls != "authkey\n" {
				t.Errorf("after the frozen write the directory holds %q", ls)
			}
			if p := hostProcs(t, host, "\x00pcmkeys\x00write\x00"); len(p) != 0 {
				t.Errorf("the frozen write's script is still there: %v", p)
			}

			// The host was given up: every operation fails at once.
			start = time.Now()
			_, err = h.Inspect(ctx, old.Path, old.Owner)
			if !errors.Is(err, ErrTimeout) {
				t.Errorf("inspect on a given-up host: %v", err)
			}
			if _, err := h.Exec(ctx, "true"); !errors.Is(err, ErrTimeout) {
				t.Errorf("exec on a given-up host: %v", err)
			}
			if _, err := h.Stage(ctx, old); !errors.Is(err, ErrTimeout) {
				t.Errorf("stage on a given-up host: %v", err)
			}
			within(t, "three operations on a given-up host", time.Since(start), time.Second)
			if err := h.Close(); err != nil {
				t.Errorf("close of a given-up host: %v", err)
			}

			// Stage then abort, on a new connection: the same, through
			// Stage's own cleanup.
			h2 := labOpen(t, d, host)
			start = time.Now()
			_, err = h2.Stage(ctx, authkeyFile("staged key"))
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("frozen stage: %v", err)
			}
			within(t, "a frozen stage", time.Since(start), labTimeout+closeGrace+8*time.Second)
			if ls := onLab(t, host, "ls -A /etc/pacemaker"); ls != "authkey\n" {
				t.Errorf("after the frozen stage the directory holds %q", ls)
			}

			// Whatever was stopped resumes: nothing more is written.
			onLab(t, host, "rm /root/freeze")
			for _, p := range hostProcs(t, host, "") {
				if p != host.PID() {
					syscallCont(p)
				}
			}
			time.Sleep(500 * time.Millisecond)
			if got := onLab(t, host, "ls -A /etc/pacemaker; cat /etc/pacemaker/authkey"); got != "authkey\nold key" {
				t.Errorf("after the stopped commands resumed: %q", got)
			}
			h3 := labOpen(t, d, host)
			if err := Write(ctx, h3, authkeyFile("later key")); err != nil {
				t.Errorf("write on a new connection afterwards: %v", err)
			}
		})
	}
}

// TestSSHStoppedSSHD: the server side of the connection itself stops
// answering (its sshd process is stopped): opening a session hangs, and
// the operation still ends with ErrTimeout.
func TestSSHStoppedSSHD(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, func(c *SSHConfig) { c.CommandTimeout = labTimeout }), host)
	ctx := context.Background()
	if _, err := h.Inspect(ctx, "/etc/pacemaker/authkey", "hacluster"); err != nil {
		t.Fatal(err)
	}
	// Every sshd of the host but its listener serves this connection.
	var stopped []int
	for _, p := range hostProcs(t, host, "sshd") {
		if p != host.PID() {
			syscallStop(p)
			stopped = append(stopped, p)
		}
	}
	if len(stopped) == 0 {
		t.Fatal("found no sshd serving the connection")
	}
	defer func() {
		for _, p := range stopped {
			syscallCont(p)
		}
	}()
	start := time.Now()
	_, err := h.Inspect(ctx, "/etc/pacemaker/authkey", "hacluster")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("inspect through a stopped sshd: %v", err)
	}
	within(t, "inspect through a stopped sshd", time.Since(start), labTimeout+2*closeGrace+3*time.Second)
	if _, err := h.LookupUser(ctx, "alice"); !errors.Is(err, ErrTimeout) {
		t.Errorf("lookup after: %v", err)
	}
}

// TestSSHCancel: cancelling ctx mid-operation returns ctx.Err() within
// the close grace, even if the command never ends (command_timeout is a
// minute here), and the temporary file is still removed.
func TestSSHCancel(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	d := labDialer(t, lab, func(c *SSHConfig) { c.CommandTimeout = time.Minute })
	h := labOpen(t, d, host)
	installFreeze(t, host)
	onLab(t, host, "touch /root/freeze")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	_, err := h.Stage(ctx, authkeyFile("k"))
	elapsed := time.Since(start)
	t.Logf("a stage cancelled after 0.5s ended after %s", elapsed.Round(time.Millisecond))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled stage: %v", err)
	}
	// 0.5 s, the grace, and the cleanup over a new connection.
	within(t, "a cancelled stage", elapsed, 500*time.Millisecond+closeGrace+5*time.Second)
	if ls := onLab(t, host, "ls -A /etc/pacemaker"); ls != "" {
		t.Errorf("after the cancelled stage: %q", ls)
	}
	// A command that stops itself, cancelled.
	h2 := labOpen(t, d, host)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	if _, err := h2.Exec(ctx, "kill -STOP $$"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled exec: %v", err)
	}
	within(t, "a cancelled exec", time.Since(start), 300*time.Millisecond+closeGrace+2*time.Second)
	// A command that ends when its session is closed keeps the connection.
	h3 := labOpen(t, d, host)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	if _, err := h3.Exec(ctx, "while :; do echo x; sleep 0.05; done"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled exec: %v", err)
	}
	if _, err := h3.Exec(context.Background(), "true"); err != nil {
		t.Errorf("the connection was given up although the command ended: %v", err)
	}
}

// TestScriptRefusesNewline: the script refuses a path with a newline
// itself (its lists are split on newlines), though callers refuse such
// paths before they get there: it is run directly.
func TestScriptRefusesNewline(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	h := labOpen(t, labDialer(t, lab, nil), lab.Hosts[0])
	f := authkeyFile("k")
	if _, err := h.run(context.Background(), f.Content, "write", "", "/etc/pacemaker/new\nline/authkey", f.Owner, f.Group, "600", f.SHA256(), tempSuffix()); !errors.Is(err, ErrUnsafe) {
		t.Errorf("a path with a newline: %v", err)
	}
	if ls := onLab(t, lab.Hosts[0], "ls -A /etc/pacemaker"); ls != "" {
		t.Errorf("left: %q", ls)
	}
}

// TestSSHShortStdin: a write whose content arrives cut short (the hash
// sent is not the content's) never replaces the target.
func TestSSHShortStdin(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	ctx := context.Background()
	if err := Write(ctx, h, authkeyFile("old key")); err != nil {
		t.Fatal(err)
	}
	full := authkeyFile("the whole new key")
	_, err := h.run(ctx, full.Content[:5], "write", "", full.Path, full.Owner, full.Group, "600", full.SHA256(), tempSuffix())
	if !errors.Is(err, ErrVerify) {
		t.Errorf("short write: %v", err)
	}
	if got := onLab(t, host, "ls -A /etc/pacemaker; cat /etc/pacemaker/authkey"); got != "authkey\nold key" {
		t.Errorf("after a short write: %q", got)
	}
}

func syscallStop(pid int) { syscall.Kill(pid, syscall.SIGSTOP) }
func syscallCont(pid int) { syscall.Kill(pid, syscall.SIGCONT) }
