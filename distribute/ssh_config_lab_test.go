package distribute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// openSSHLab is a lab of three hosts (host02 refuses root: only deploy
// with sudo gets in) and a home of its own holding the lab's key at
// ~/keys/lab and nothing else.
func openSSHLab(t *testing.T) (*sshlab.Lab, string) {
	t.Helper()
	lab := sshlab.Start(t, 3, sshlab.Options{SudoOnly: []int{2}})
	home := isolatedHome(t)
	key, err := os.ReadFile(lab.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(home, "keys"), 0o700)
	if err := os.WriteFile(filepath.Join(home, "keys", "lab"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	return lab, home
}

// openAs opens the host named name with cfg, as rotate does: the endpoint
// is the name on port 22 unless pcmkeys's config says otherwise.
func openAs(t *testing.T, cfg SSHConfig, name string) (*SSHHost, error) {
	t.Helper()
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	d, err := NewSSHDialer(cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(d.Close)
	h, err := d.Open(context.Background(), name, SSHEndpoint{Address: name, Port: 22}, "")
	if err == nil {
		t.Cleanup(func() { h.Close() })
	}
	return h, err
}

// landsOn writes an authkey through h and says which lab host holds it.
func landsOn(t *testing.T, lab *sshlab.Lab, h *SSHHost) string {
	t.Helper()
	content := fmt.Sprintf("%064d", time.Now().UnixNano())
	if err := Write(context.Background(), h, authkeyFile(content)); err != nil {
		t.Fatalf("write through %s: %v", h.Name(), err)
	}
	var on []string
	for _, lh := range lab.Hosts {
		if out, _ := lh.Exec(context.Background(), "cat /etc/pacemaker/authkey 2>/dev/null"); out == content {
			on = append(on, lh.Name)
		}
	}
	return strings.Join(on, " ")
}

// TestOpenSSHConfigLab: hosts reached through ~/.ssh/config as ssh reaches
// them, against real sshd: an alias with HostName, Port, User and
// IdentityFile; pcmkeys's own fields winning over it; a ProxyJump; a
// UserKnownHostsFile; a per-host user.
func TestOpenSSHConfigLab(t *testing.T) {
	lab, home := openSSHLab(t)
	p := func(i int) int { return lab.Hosts[i].Port }
	conf := openSSHFile(t, home, fmt.Sprintf(`
Host web
    HostName 127.0.0.1
    Port %d
    User deploy
    IdentityFile ~/keys/lab
Host inner
    HostName 127.0.0.1
    Port %d
    ProxyJump deploy@jumpbox
Host inner-as-root
    HostName 127.0.0.1
    Port %d
    ProxyJump root@jumpbox
Host jumpbox
    HostName 127.0.0.1
    Port %d
Host pinned
    HostName 127.0.0.1
    Port %d
    UserKnownHostsFile ~/kh/%%n
Host *
    IdentityFile ~/keys/lab
`, p(2), p(0), p(0), p(2), p(1)))
	base := SSHConfig{User: "root", Sudo: true, KnownHosts: lab.KnownHosts, OpenSSHConfig: conf}

	t.Run("alias", func(t *testing.T) {
		// "web" resolves nowhere, port 22 is no lab host, root may not log
		// in on host02, and the only key is the IdentityFile.
		h, err := openAs(t, base, "web")
		if err != nil {
			t.Fatal(err)
		}
		if on := landsOn(t, lab, h); on != "host02" {
			t.Errorf("web's file is on %q, want host02", on)
		}
		noConf := base
		noConf.OpenSSHConfig = ""
		if _, err := openAs(t, noConf, "web"); err == nil {
			t.Error("web was reached without the OpenSSH config")
		}
	})
	t.Run("pcmkeys's own fields win", func(t *testing.T) {
		own := base
		own.Hosts = map[string]SSHHostConfig{"web": {Port: p(0), User: "root"}}
		h, err := openAs(t, own, "web")
		if err != nil {
			t.Fatal(err)
		}
		if on := landsOn(t, lab, h); on != "host00" {
			t.Errorf("with port: %d, web's file is on %q, want host00", p(0), on)
		}
		own.Hosts = map[string]SSHHostConfig{"web": {User: "root"}}
		if _, err := openAs(t, own, "web"); err == nil || !strings.Contains(err.Error(), "ssh login as root:") {
			t.Errorf("user: root on a host that refuses root: %v", err)
		}
	})
	t.Run("ProxyJump", func(t *testing.T) {
		h, err := openAs(t, base, "inner")
		if err != nil {
			t.Fatal(err)
		}
		if on := landsOn(t, lab, h); on != "host00" {
			t.Errorf("inner's file is on %q, want host00", on)
		}
		// The same host through a jump that refuses its login fails at the
		// jump: the connection goes through it.
		_, err = openAs(t, base, "inner-as-root")
		if err == nil || !strings.Contains(err.Error(), "jump host: host jump jumpbox") || !strings.Contains(err.Error(), "ssh login as root") {
			t.Errorf("through a jump that refuses root: %v", err)
		}
	})
	t.Run("UserKnownHostsFile", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(empty, nil, 0o644)
		only := base
		only.KnownHosts = empty
		if _, err := openAs(t, only, "pinned"); !errors.Is(err, ErrHostKeyUnknown) || !strings.Contains(err.Error(), ">> "+filepath.Join(home, "kh", "pinned")) {
			t.Errorf("before ~/kh/pinned exists: %v", err)
		}
		os.Mkdir(filepath.Join(home, "kh"), 0o700)
		os.WriteFile(filepath.Join(home, "kh", "pinned"), []byte(lab.Hosts[1].HostKeyLine+"\n"), 0o644)
		h, err := openAs(t, only, "pinned")
		if err != nil {
			t.Fatal(err)
		}
		if on := landsOn(t, lab, h); on != "host01" {
			t.Errorf("pinned's file is on %q, want host01", on)
		}
	})
	t.Run("per-host user", func(t *testing.T) {
		// One dialer: host02 as deploy, host00 as root (the default).
		cfg := SSHConfig{User: "root", Sudo: true, KnownHosts: lab.KnownHosts, IdentityFiles: []string{lab.IdentityFile}, ConnectTimeout: 10 * time.Second,
			Hosts: map[string]SSHHostConfig{"host02": {User: "deploy"}}}
		d, err := NewSSHDialer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for _, i := range []int{2, 0} {
			h, err := d.Open(context.Background(), lab.Hosts[i].Name, SSHEndpoint{Address: "127.0.0.1", Port: p(i)}, "")
			if err != nil {
				t.Fatalf("%s: %v", lab.Hosts[i].Name, err)
			}
			defer h.Close()
			if on := landsOn(t, lab, h); on != lab.Hosts[i].Name {
				t.Errorf("%s's file is on %q", lab.Hosts[i].Name, on)
			}
		}
		cfg.Hosts = nil
		if _, err := openAs(t, cfg, "host02"); err == nil {
			t.Error("host02 let root in: the per-host user proves nothing")
		}
	})
}

// TestKnownHostsFilesLab: a host key only in a "global" known_hosts file
// (/etc/ssh/ssh_known_hosts's part) is known; a missing file is skipped;
// an unknown or changed key is refused whatever the OpenSSH config says.
func TestKnownHostsFilesLab(t *testing.T) {
	lab, home := openSSHLab(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	global := filepath.Join(dir, "ssh_known_hosts")
	os.WriteFile(global, []byte(lab.Hosts[0].HostKeyLine+"\n"), 0o644)
	cfg := SSHConfig{User: "root", KnownHosts: missing, ExtraKnownHosts: []string{filepath.Join(dir, "also-missing"), global},
		IdentityFiles: []string{lab.IdentityFile}, ConnectTimeout: 10 * time.Second}
	d, err := NewSSHDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	open := func(d *SSHDialer, i int) error {
		h, err := d.Open(context.Background(), lab.Hosts[i].Name, SSHEndpoint{Address: "127.0.0.1", Port: lab.Hosts[i].Port}, "")
		if err == nil {
			h.Close()
		}
		return err
	}
	if err := open(d, 0); err != nil {
		t.Errorf("host00, known only globally: %v", err)
	}
	if err := open(d, 1); !errors.Is(err, ErrHostKeyUnknown) || !strings.Contains(err.Error(), "read: "+global) || !strings.Contains(err.Error(), ">> "+missing) {
		t.Errorf("host01, known nowhere: %v", err)
	}
	// StrictHostKeyChecking no and UserKnownHostsFile /dev/null change
	// nothing.
	conf := openSSHFile(t, home, "Host *\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n")
	lax := cfg
	lax.OpenSSHConfig = conf
	var log bytes.Buffer
	lax.Log = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dl, err := NewSSHDialer(lax)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if err := open(dl, 1); !errors.Is(err, ErrHostKeyUnknown) {
		t.Errorf("host01 with StrictHostKeyChecking no: %v", err)
	}
	if !strings.Contains(log.String(), "StrictHostKeyChecking is ignored") {
		t.Errorf("no word that StrictHostKeyChecking was ignored: %s", log.String())
	}
	// A changed key in the global file is refused, naming it.
	changed := strings.Replace(lab.Hosts[1].HostKeyLine, fmt.Sprint(lab.Hosts[1].Port), fmt.Sprint(lab.Hosts[0].Port), 1)
	os.WriteFile(global, []byte(changed+"\n"), 0o644)
	dc, err := NewSSHDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	if err := open(dc, 0); !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), global+" line 1") {
		t.Errorf("host00 with another key in the global file: %v", err)
	}
}

// TestDefaultIdentitiesLab: without identity_files the default keys that
// are there and load are offered; one with a passphrase is skipped with a
// debug line, never prompted for.
func TestDefaultIdentitiesLab(t *testing.T) {
	lab, home := openSSHLab(t)
	sshDir := filepath.Join(home, ".ssh")
	os.Mkdir(sshDir, 0o700)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "secret phrase", "-f", filepath.Join(sshDir, "id_ed25519")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	defaults := []string{filepath.Join(sshDir, "id_ed25519"), filepath.Join(sshDir, "id_ecdsa"), filepath.Join(sshDir, "id_rsa")}
	var log bytes.Buffer
	cfg := SSHConfig{User: "root", KnownHosts: lab.KnownHosts, DefaultIdentityFiles: defaults, ConnectTimeout: 10 * time.Second,
		Log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	// Only the passphrase key is there: no key at all.
	if _, err := NewSSHDialer(cfg); err == nil || !strings.Contains(err.Error(), "no keys") {
		t.Errorf("with only a passphrase key: %v", err)
	}
	if !strings.Contains(log.String(), "it has a passphrase") || !strings.Contains(log.String(), defaults[0]) {
		t.Errorf("no debug line for the passphrase key: %s", log.String())
	}
	// The lab's key as ~/.ssh/id_rsa (a name, not a type) is offered.
	key, _ := os.ReadFile(lab.IdentityFile)
	os.WriteFile(defaults[2], key, 0o600)
	d, err := NewSSHDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h, err := d.Open(context.Background(), lab.Hosts[0].Name, SSHEndpoint{Address: "127.0.0.1", Port: lab.Hosts[0].Port}, "")
	if err != nil {
		t.Fatalf("with the default key: %v", err)
	}
	defer h.Close()
	if _, err := h.LookupUser(context.Background(), "root"); err != nil {
		t.Error(err)
	}
}
