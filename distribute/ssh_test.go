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

// remote runs a command inside a lab host's namespace.
func remote(t *testing.T, h *sshlab.Host, script string, args ...string) string {
	t.Helper()
	out, err := h.Exec(context.Background(), script, args...)
	if err != nil {
		t.Fatalf("on %s: %s: %v: %s", h.Name, script, err, out)
	}
	return out
}

// remoteState is what a lab host's private directories hold, so a test can
// assert that a refused write changed nothing.
func remoteState(t *testing.T, h *sshlab.Host) string {
	return remote(t, h, "find /etc/pacemaker /home -printf '%p %y %m %u:%g %s\\n' | sort")
}

func TestSSHWriteServerFile(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	h := labOpen(t, labDialer(t, lab, nil), lab.Hosts[0])
	f := File{Path: "/etc/pacemaker/authkey", Content: []byte("raw\x00key\nbytes" + strings.Repeat("x", 4000)), Owner: "hacluster", Group: "haclient", Mode: 0o600}
	if err := Write(context.Background(), h, f); err != nil {
		t.Fatal(err)
	}
	got := remote(t, lab.Hosts[0], "stat -c '%U:%G %a' /etc/pacemaker/authkey; sha256sum < /etc/pacemaker/authkey; ls -A /etc/pacemaker")
	want := fmt.Sprintf("hacluster:haclient 600\n%s  -\nauthkey\n", f.SHA256())
	if got != want {
		t.Errorf("remote file:\n%s\nwant:\n%s", got, want)
	}
	if got, err := h.Read(context.Background(), f.Path, f.Owner); err != nil || string(got) != string(f.Content) {
		t.Errorf("raw bytes read back differ: %v", err)
	}
	// Missing directories are made: the file's own 0750 root:GROUP, the
	// others 0755.
	deep := withPath(f, "/etc/pacemaker/a/b/authkey")
	if err := Write(context.Background(), h, deep); err != nil {
		t.Fatal(err)
	}
	if got := remote(t, lab.Hosts[0], "stat -c '%n %U:%G %a' /etc/pacemaker/a /etc/pacemaker/a/b /etc/pacemaker/a/b/authkey"); got != "/etc/pacemaker/a root:root 755\n/etc/pacemaker/a/b root:haclient 750\n/etc/pacemaker/a/b/authkey hacluster:haclient 600\n" {
		t.Errorf("made directories:\n%s", got)
	}
	remote(t, lab.Hosts[0], "rm -rf /etc/pacemaker/a")
	// A looser existing file is replaced by a 0600 one.
	remote(t, lab.Hosts[0], "echo old > /etc/pacemaker/cib-credentials; chmod 644 /etc/pacemaker/cib-credentials")
	f2 := File{Path: "/etc/pacemaker/cib-credentials", Content: []byte("hacluster:" + strings.Repeat("ab", 32) + "\n"), Owner: "hacluster", Group: "haclient", Mode: 0o600}
	if err := Write(context.Background(), h, f2); err != nil {
		t.Fatal(err)
	}
	st, err := h.Inspect(context.Background(), f2.Path, "hacluster")
	if err != nil || !st.Regular || st.Mode != 0o600 || st.Owner != "hacluster" || st.Group != "haclient" || st.SHA256 != f2.SHA256() || st.UID != sshlab.UIDHacluster {
		t.Errorf("inspect = %+v, %v", st, err)
	}
}

func TestSSHClientFileInHome(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	h := labOpen(t, labDialer(t, lab, nil), lab.Hosts[0])
	ctx := context.Background()
	acct, err := h.LookupUser(ctx, "alice")
	if err != nil || acct.UID != sshlab.UIDAlice || acct.Home != "/home/alice" {
		t.Fatalf("LookupUser = %+v, %v", acct, err)
	}
	if _, err := h.LookupUser(ctx, "mallory"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
	f := File{Path: "~/.pcmkeys/prod.key", Content: []byte(strings.Repeat("0f", 32)), Owner: "alice", Mode: 0o600}
	if err := Write(ctx, h, f); err != nil {
		t.Fatal(err)
	}
	got := remote(t, lab.Hosts[0], "stat -c '%n %U:%G %a' /home/alice/.pcmkeys /home/alice/.pcmkeys/prod.key")
	if got != "/home/alice/.pcmkeys alice:alice 700\n/home/alice/.pcmkeys/prod.key alice:alice 600\n" {
		t.Errorf("client files:\n%s", got)
	}
	if got, err := h.Read(ctx, f.Path, "alice"); err != nil || string(got) != string(f.Content) {
		t.Errorf("read back: %q %v", got, err)
	}
	remote(t, lab.Hosts[0], "ln -s /etc/shadow /home/alice/.pcmkeys/link")
	if _, err := h.Read(ctx, "~/.pcmkeys/link", "alice"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("read through a link: %v", err)
	}
	if err := h.Remove(ctx, f.Path, "alice"); err != nil {
		t.Fatal(err)
	}
	if st, err := h.Inspect(ctx, f.Path, "alice"); err != nil || st.Exists {
		t.Errorf("after remove: %+v %v", st, err)
	}
}

func TestSSHStageAbortAndCancel(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	h := labOpen(t, labDialer(t, lab, nil), lab.Hosts[0])
	ctx, cancel := context.WithCancel(context.Background())
	f := File{Path: "/etc/pacemaker/authkey", Content: []byte(strings.Repeat("k", 64)), Owner: "hacluster", Group: "haclient", Mode: 0o600}
	s, err := h.Stage(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if ls := remote(t, lab.Hosts[0], "ls -A /etc/pacemaker"); !strings.HasPrefix(ls, ".authkey.pcmkeys-") {
		t.Fatalf("staged file not beside the target: %q", ls)
	}
	cancel() // Ctrl-C: the abort still reaches the host.
	if err := s.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if ls := remote(t, lab.Hosts[0], "ls -A /etc/pacemaker"); ls != "" {
		t.Errorf("left behind: %q", ls)
	}
	if _, err := h.Stage(ctx, f); !errors.Is(err, context.Canceled) {
		t.Errorf("stage after cancel: %v", err)
	}
	// An interrupted one-step write removes its temporary file by the
	// suffix it chose, as abort does here for a staged one.
	s2, err := h.Stage(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	suffix := strings.TrimPrefix(s2.(*sshStaged).tmp, "/etc/pacemaker/.authkey.pcmkeys-")
	if _, err := h.run(context.Background(), nil, "abort", "", f.Path, f.Owner, f.Group, "600", "", suffix); err != nil {
		t.Fatal(err)
	}
	if ls := remote(t, lab.Hosts[0], "ls -A /etc/pacemaker"); ls != "" {
		t.Errorf("abort by suffix left: %q", ls)
	}
	for _, bad := range []string{"../../x", "zz", "/etc/passwd"} {
		if _, err := h.run(context.Background(), nil, "abort", "", f.Path, f.Owner, f.Group, "600", "", bad); err == nil {
			t.Errorf("abort accepted temp %q", bad)
		}
	}
}

func TestSSHRefusals(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	good := File{Path: "/etc/pacemaker/cib-credentials", Content: []byte("hacluster:" + strings.Repeat("ab", 32) + "\n"), Owner: "hacluster", Group: "haclient", Mode: 0o600}
	cases := []struct {
		name  string
		setup string
		file  File
		want  error
		msg   string
	}{
		{"symlinked target", "echo victim > /root/victim; ln -s /root/victim /etc/pacemaker/cib-credentials", good, ErrUnsafe, "is a symbolic link"},
		{"symlinked parent", "mkdir -p /home/elsewhere/pacemaker; ln -s /home/elsewhere/pacemaker /etc/pacemaker/sub", withPath(good, "/etc/pacemaker/sub/cib-credentials"), ErrUnsafe, "directory /etc/pacemaker/sub is a symbolic link"},
		{"directory at target", "mkdir /etc/pacemaker/cib-credentials", good, ErrUnsafe, "not a regular file"},
		{"fifo at target", "mkfifo /etc/pacemaker/cib-credentials", good, ErrUnsafe, "not a regular file"},
		{"directory writable by others", "chmod 777 /etc/pacemaker", good, ErrUnsafe, "writable by group or other"},
		{"directory owned by another user", "chown bob /etc/pacemaker", good, ErrUnsafe, fmt.Sprintf("owned by uid %d", sshlab.UIDBob)},
		{"target owned by another user", "echo planted > /etc/pacemaker/cib-credentials; chown bob /etc/pacemaker/cib-credentials", good, ErrUnsafe, "neither root nor hacluster"},
		{"client file owned by another user", "mkdir -m 700 /home/alice/.pcmkeys; chown alice /home/alice/.pcmkeys; echo x > /home/alice/.pcmkeys/k; chown bob /home/alice/.pcmkeys/k", File{Path: "~/.pcmkeys/k", Content: []byte("00"), Owner: "alice", Mode: 0o600}, ErrUnsafe, "neither root nor alice"},
		{"other user's dir in home", "mkdir /home/alice/.pcmkeys; chown bob /home/alice/.pcmkeys", File{Path: "~/.pcmkeys/k", Content: []byte("00"), Owner: "alice", Mode: 0o600}, ErrUnsafe, "owned by uid"},
		{"home writable by group", "chmod 770 /home/alice", File{Path: "~/.pcmkeys/k", Content: []byte("00"), Owner: "alice", Mode: 0o600}, ErrUnsafe, "/home/alice is writable by group"},
		{"home missing", "rm -rf /home/bob", File{Path: "~/.pcmkeys/k", Content: []byte("00"), Owner: "bob", Mode: 0o600}, nil, "home directory /home/bob of bob does not exist"},
		{"unknown owner", "", withOwner(good, "mallory"), ErrUnknownUser, "no such user"},
		{"unknown group", "", withGroup(good, "wheelx"), ErrUnknownGroup, "no such group"},
		{"loose mode", "", withMode(good, 0o644), nil, "gives group or other"},
		{"dot-dot path", "", withPath(good, "/etc/pacemaker/../x"), nil, "'..'"},
		{"relative path", "", withPath(good, "etc/x"), nil, "not absolute"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			remote(t, host, "rm -rf /etc/pacemaker/* /etc/pacemaker/.[!.]* /home/elsewhere; chmod 750 /etc/pacemaker; chown root:haclient /etc/pacemaker; for u in alice bob deploy; do mkdir -p /home/$u; chown $u:$u /home/$u; chmod 700 /home/$u; rm -rf /home/$u/.pcmkeys; done")
			if tc.setup != "" {
				remote(t, host, tc.setup)
			}
			before := remoteState(t, host)
			err := Write(context.Background(), h, tc.file)
			if err == nil {
				t.Fatal("write succeeded, want a refusal")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), host.Name) {
				t.Errorf("error %q does not say %q and name the host", err, tc.msg)
			}
			if after := remoteState(t, host); after != before {
				t.Errorf("refused write changed the host:\n%s\n---\n%s", before, after)
			}
		})
	}
}

func withPath(f File, p string) File      { f.Path = p; return f }
func withOwner(f File, o string) File     { f.Owner = o; return f }
func withGroup(f File, g string) File     { f.Group = g; return f }
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
	if got := remote(t, sudoHost, "stat -c '%U:%G %a' /etc/pacemaker/authkey"); got != "hacluster:haclient 600\n" {
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
	if ls := remote(t, lab.Hosts[0], "ls -A /etc/pacemaker"); strings.Contains(ls, ".pcmkeys-") {
		t.Errorf("a timed-out write left %q", ls)
	}
}

func TestSSHSweep(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	h := labOpen(t, labDialer(t, lab, nil), lab.Hosts[0])
	remote(t, lab.Hosts[0], "cd /etc/pacemaker && touch .authkey.pcmkeys-0123456789abcdef .authkey.pcmkeys-fedcba9876543210 .cib-credentials.pcmkeys-0123456789abcdef keep && ln -s /etc/shadow .authkey.pcmkeys-aaaaaaaaaaaaaaaa")
	n, err := h.Sweep(context.Background(), "/etc/pacemaker/authkey", "hacluster")
	if err != nil || n != 3 {
		t.Fatalf("sweep = %d, %v", n, err)
	}
	if ls := remote(t, lab.Hosts[0], "ls -A /etc/pacemaker; test -s /etc/shadow && echo shadow-intact"); ls != ".cib-credentials.pcmkeys-0123456789abcdef\nkeep\nshadow-intact\n" {
		t.Errorf("after sweep: %q", ls)
	}
	// A write sweeps its own target's leftovers too.
	f := File{Path: "/etc/pacemaker/cib-credentials", Content: []byte("hacluster:" + strings.Repeat("ab", 32) + "\n"), Owner: "hacluster", Group: "haclient", Mode: 0o600}
	if err := Write(context.Background(), h, f); err != nil {
		t.Fatal(err)
	}
	if ls := remote(t, lab.Hosts[0], "ls -A /etc/pacemaker"); ls != "cib-credentials\nkeep\n" {
		t.Errorf("after a write: %q", ls)
	}
}
