package distribute

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

func labDialer(t *testing.T, lab *sshlab.Lab, mod func(*SSHConfig)) *SSHDialer {
	t.Helper()
	cfg := SSHConfig{User: "root", KnownHosts: lab.KnownHosts, IdentityFiles: []string{lab.IdentityFile}, ConnectTimeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	d, err := NewSSHDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func labOpen(t *testing.T, d *SSHDialer, h *sshlab.Host) *SSHHost {
	t.Helper()
	c, err := d.Open(context.Background(), h.Name, SSHEndpoint{Address: "127.0.0.1", Port: h.Port}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// onLab runs a command inside a lab host's namespace.
func onLab(t *testing.T, h *sshlab.Host, script string, args ...string) string {
	t.Helper()
	out, err := h.Exec(context.Background(), script, args...)
	if err != nil {
		t.Fatalf("on %s: %s: %v: %s", h.Name, script, err, out)
	}
	return out
}

// TestSSHAbortBySuffix: the script's abort removes a staged file named
// by the random suffix alone (what an interrupted one-step write knows of
// it), and takes no name but a temporary file of the target's.
func TestSSHAbortBySuffix(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	h := labOpen(t, labDialer(t, lab, nil), lab.Hosts[0])
	ctx := context.Background()
	f := authkeyFile(strings.Repeat("k", 64))
	s, err := h.Stage(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	suffix := strings.TrimPrefix(s.(*sshStaged).tmp, "/etc/pacemaker/.authkey.pcmkeys-")
	if _, err := h.run(ctx, nil, "abort", "", f.Path, f.Owner, f.Group, "600", "", suffix); err != nil {
		t.Fatal(err)
	}
	if ls := onLab(t, lab.Hosts[0], "ls -A /etc/pacemaker"); ls != "" {
		t.Errorf("abort by suffix left: %q", ls)
	}
	for _, bad := range []string{"../../x", "zz", "/etc/passwd"} {
		if _, err := h.run(ctx, nil, "abort", "", f.Path, f.Owner, f.Group, "600", "", bad); err == nil {
			t.Errorf("abort accepted temp %q", bad)
		}
	}
}

func withMode(f File, m os.FileMode) File { f.Mode = m; return f }

func TestSSHHostKeys(t *testing.T) {
	lab := sshlab.Start(t, 2, sshlab.Options{})
	ep := SSHEndpoint{Address: "127.0.0.1", Port: lab.Hosts[0].Port}
	// Unknown: known_hosts lacks host00.
	unknown := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(unknown, []byte(lab.Hosts[1].HostKeyLine+"\n"), 0o644)
	d := labDialer(t, lab, func(c *SSHConfig) { c.KnownHosts = unknown })
	_, err := d.Open(context.Background(), "host00", ep, "")
	if !errors.Is(err, ErrHostKeyUnknown) || !strings.Contains(err.Error(), "SHA256:") || !strings.Contains(err.Error(), "ssh-keyscan -p") || !strings.Contains(err.Error(), "host00") {
		t.Errorf("unknown host key: %v", err)
	}
	// Changed: known_hosts holds host01's key under host00's address.
	changed := filepath.Join(t.TempDir(), "known_hosts")
	line := strings.Replace(lab.Hosts[1].HostKeyLine, fmt.Sprint(lab.Hosts[1].Port), fmt.Sprint(lab.Hosts[0].Port), 1)
	os.WriteFile(changed, []byte(line+"\n"), 0o644)
	d = labDialer(t, lab, func(c *SSHConfig) { c.KnownHosts = changed })
	_, err = d.Open(context.Background(), "host00", ep, "")
	if !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("changed host key: %v", err)
	}
	if _, err := NewSSHDialer(SSHConfig{User: "root", IdentityFiles: []string{lab.IdentityFile}}); err == nil {
		t.Error("a dialer without known_hosts was made")
	}
}

func TestSSHSudoAndJump(t *testing.T) {
	lab := sshlab.Start(t, 3, sshlab.Options{SudoOnly: []int{2}})
	sudoHost := lab.Hosts[2]
	ep := SSHEndpoint{Address: "127.0.0.1", Port: sudoHost.Port}
	// Root may not log in there.
	if _, err := labDialer(t, lab, nil).Open(context.Background(), sudoHost.Name, ep, ""); err == nil || !strings.Contains(err.Error(), "ssh login as root") {
		t.Errorf("root login on a sudo-only host: %v", err)
	}
	d := labDialer(t, lab, func(c *SSHConfig) { c.User, c.Sudo = "deploy", true })
	h, err := d.Open(context.Background(), sudoHost.Name, ep, "")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	f := File{Path: "/etc/pacemaker/authkey", Content: []byte(strings.Repeat("s", 256)), Owner: "hacluster", Group: "haclient", Mode: 0o600}
	if err := Write(context.Background(), h, f); err != nil {
		t.Fatalf("write with sudo: %v", err)
	}
	if got := onLab(t, sudoHost, "stat -c '%U:%G %a' /etc/pacemaker/authkey"); got != "hacluster:haclient 600\n" {
		t.Errorf("file written with sudo: %s", got)
	}
	// Without sudo, deploy cannot write there: a clear failure.
	d2 := labDialer(t, lab, func(c *SSHConfig) { c.User = "deploy" })
	h2, err := d2.Open(context.Background(), sudoHost.Name, ep, "")
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if err := Write(context.Background(), h2, f); err == nil {
		t.Error("deploy wrote /etc/pacemaker without sudo")
	}
	// Through a jump host: host01 reaches host00.
	jd := labDialer(t, lab, func(c *SSHConfig) {
		c.Jump = &SSHEndpoint{Name: "host01", Address: "127.0.0.1", Port: lab.Hosts[1].Port}
	})
	jh, err := jd.Open(context.Background(), "host00", SSHEndpoint{Address: "127.0.0.1", Port: lab.Hosts[0].Port}, "")
	if err != nil {
		t.Fatalf("through the jump host: %v", err)
	}
	defer jh.Close()
	if err := Write(context.Background(), jh, f); err != nil {
		t.Fatal(err)
	}
}

func TestSSHAgent(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agentCmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agentCmd.Start(); err != nil {
		t.Skipf("ssh-agent: %v", err)
	}
	defer agentCmd.Process.Kill()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	add := exec.Command("ssh-add", lab.IdentityFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v %s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	d := labDialer(t, lab, func(c *SSHConfig) { c.IdentityFiles = nil })
	h := labOpen(t, d, lab.Hosts[0])
	if _, err := h.LookupUser(context.Background(), "root"); err != nil {
		t.Fatalf("with the agent's key: %v", err)
	}
}

func TestSSHCommandTimeout(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	d := labDialer(t, lab, func(c *SSHConfig) { c.CommandTimeout = time.Microsecond })
	h := labOpen(t, d, lab.Hosts[0])
	f := File{Path: "/etc/pacemaker/authkey", Content: []byte(strings.Repeat("k", 64)), Owner: "hacluster", Group: "haclient", Mode: 0o600}
	err := Write(context.Background(), h, f)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "no answer within 1µs") {
		t.Errorf("write with a 1µs command timeout: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if ls := onLab(t, lab.Hosts[0], "ls -A /etc/pacemaker"); strings.Contains(ls, ".pcmkeys-") {
		t.Errorf("a timed-out write left %q", ls)
	}
}
