package distribute

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// openSSHFile writes an OpenSSH client config into dir, mode 0600.
func openSSHFile(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// isolatedHome points HOME at a fresh directory and drops the agent, so a
// test reads nothing of the machine's ~/.ssh.
func isolatedHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	return home
}

// TestOpenSSHResolve: each field of a route comes from pcmkeys's config if
// it wrote it, else from the OpenSSH config, else from the endpoint and
// defaults; the files' tokens and ~ are expanded.
func TestOpenSSHResolve(t *testing.T) {
	home := isolatedHome(t)
	dir := t.TempDir()
	conf := openSSHFile(t, dir, `
Host web
    HostName 10.1.2.3
    Port 2222
    User deploy
    IdentityFile ~/.ssh/web_%r
    IdentityFile /keys/%h-%p
    UserKnownHostsFile ~/kh/web /etc/kh/%n
    StrictHostKeyChecking no
Host *.lab
    HostName %h.internal
    ProxyJump ops@bastion:2200
Host bastion
    HostName 192.0.2.1
    Port 22022
    IdentityFile ~/.ssh/bastion
Host Upper
    Port 2022
Host *
    User admin
`)
	base := SSHConfig{User: "root", Sudo: true, KnownHosts: filepath.Join(dir, "kh"), OpenSSHConfig: conf,
		Hosts: map[string]SSHHostConfig{"mine": {Address: "192.0.2.9", Port: 2200, User: "root"}, "halfmine": {User: "alice"}}}
	d, err := newSSHDialer(base)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	via := " (User in " + conf + ")"
	cases := []struct {
		name       string
		ep         SSHEndpoint
		addr       string
		port       int
		user, from string
		identity   []string
		known      []string
		jump       string // "user@address:port" of the jump
	}{
		{"alias", SSHEndpoint{Name: "web", Address: "web", Port: 22}, "10.1.2.3", 2222, "deploy", via,
			[]string{home + "/.ssh/web_deploy", "/keys/10.1.2.3-2222"}, []string{home + "/kh/web", "/etc/kh/web"}, ""},
		{"wildcard with %h and a jump", SSHEndpoint{Name: "db.lab", Address: "db.lab", Port: 22}, "db.lab.internal", 22, "admin", via,
			nil, nil, "ops@192.0.2.1:2200"},
		{"not in the file", SSHEndpoint{Name: "other", Address: "other", Port: 22}, "other", 22, "admin", via, nil, nil, ""},
		{"matched as written, as ssh does", SSHEndpoint{Name: "Upper", Address: "Upper", Port: 22}, "Upper", 2022, "admin", via, nil, nil, ""},
		{"another case is another name", SSHEndpoint{Name: "UPPER", Address: "UPPER", Port: 22}, "UPPER", 22, "admin", via, nil, nil, ""},
		{"pcmkeys's own fields win", SSHEndpoint{Name: "mine", Address: "mine", Port: 22}, "192.0.2.9", 2200, "root", "", nil, nil, ""},
		{"only the user is pcmkeys's", SSHEndpoint{Name: "halfmine", Address: "halfmine", Port: 22}, "halfmine", 22, "alice", "", nil, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := d.resolve(tc.ep)
			if err != nil {
				t.Fatal(err)
			}
			if r.ep.Address != tc.addr || r.ep.Port != tc.port || r.ep.Name != tc.ep.Name {
				t.Errorf("endpoint %+v, want %s:%d", r.ep, tc.addr, tc.port)
			}
			if r.user != tc.user || r.userFrom != tc.from {
				t.Errorf("user %q%q, want %q%q", r.user, r.userFrom, tc.user, tc.from)
			}
			if strings.Join(r.identity, " ") != strings.Join(tc.identity, " ") || strings.Join(r.knownHosts, " ") != strings.Join(tc.known, " ") {
				t.Errorf("files %q %q, want %q %q", r.identity, r.knownHosts, tc.identity, tc.known)
			}
			jump := ""
			if r.jump != nil {
				jump = r.jump.user + "@" + r.jump.ep.hostport()
				if r.jump.ep.Name != "jump bastion" || strings.Join(r.jump.identity, " ") != home+"/.ssh/bastion" {
					t.Errorf("jump %+v", r.jump)
				}
			}
			if jump != tc.jump {
				t.Errorf("jump %q, want %q", jump, tc.jump)
			}
		})
	}
	// pcmkeys's own jump wins over ProxyJump.
	withJump := base
	withJump.Jump = &SSHEndpoint{Name: "jump j", Address: "j", Port: 22}
	dj, err := newSSHDialer(withJump)
	if err != nil {
		t.Fatal(err)
	}
	defer dj.close()
	if r, err := dj.resolve(SSHEndpoint{Name: "db.lab", Address: "db.lab", Port: 22}); err != nil || r.jump == nil || r.jump.ep.Address != "j" {
		t.Errorf("ssh.jump did not win over ProxyJump: %+v %v", r, err)
	}
}

// TestOpenSSHRefusals: what pcmkeys does not do is refused by name, never
// done another way or skipped.
func TestOpenSSHRefusals(t *testing.T) {
	isolatedHome(t)
	cases := []struct {
		name, conf string
		sudo       bool
		atCreate   bool
		want       string
	}{
		{"two hops", "Host h\n ProxyJump a,b\n", true, false, "more than one hop"},
		{"a jump with a jump", "Host h\n ProxyJump a\nHost a\n ProxyJump b\n", true, false, "ProxyJump of its own"},
		{"ProxyCommand", "Host h\n ProxyCommand nc %h %p\n", true, false, "ProxyCommand: not supported"},
		{"a user that is not root, without sudo", "Host h\n User deploy\n", false, false, "logs in as deploy, not root: set ssh.become: sudo"},
		{"a bad port", "Host h\n Port 70000\n", true, false, "is not a TCP port"},
		{"a relative IdentityFile", "Host h\n IdentityFile id_lab\n", true, false, "not an absolute path"},
		{"an unknown token", "Host h\n HostName %C\n", true, false, "token %C is not supported"},
		{"a bad jump", "Host h\n ProxyJump a@[x\n", true, false, "is not [user@]host[:port]"},
		{"Match exec", "Match exec true\n User x\n", true, true, "set ssh.use_ssh_config: false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := SSHConfig{User: "root", Sudo: tc.sudo, KnownHosts: filepath.Join(dir, "kh"), OpenSSHConfig: openSSHFile(t, dir, tc.conf)}
			d, err := newSSHDialer(cfg)
			if tc.atCreate {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("dialer: %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.close()
			_, err = d.resolve(SSHEndpoint{Name: "h", Address: "h", Port: 22})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("resolve: %v, want %q", err, tc.want)
			}
		})
	}
	// A config someone else may write is refused, as ssh refuses it.
	dir := t.TempDir()
	conf := openSSHFile(t, dir, "Host h\n User root\n")
	os.Chmod(conf, 0o664)
	if _, err := newSSHDialer(SSHConfig{User: "root", KnownHosts: "/kh", OpenSSHConfig: conf}); err == nil || !strings.Contains(err.Error(), "bad permissions 0664") {
		t.Errorf("group-writable config: %v", err)
	}
	// A missing config is none at all: the dialer's only complaint is then
	// that it has no key.
	if _, err := newSSHDialer(SSHConfig{User: "root", KnownHosts: "/kh", OpenSSHConfig: filepath.Join(dir, "none")}); err == nil || !strings.HasPrefix(err.Error(), "ssh: no keys:") {
		t.Errorf("missing config: %v", err)
	}
}

func TestParseJump(t *testing.T) {
	cases := []struct {
		in, user, host string
		port           int
		bad            bool
	}{
		{in: "bastion", host: "bastion"},
		{in: "ops@bastion", user: "ops", host: "bastion"},
		{in: "ops@bastion:2200", user: "ops", host: "bastion", port: 2200},
		{in: "[2001:db8::1]:22", host: "2001:db8::1", port: 22},
		{in: "2001:db8::1", host: "2001:db8::1"},
		{in: "ssh://ops@bastion:2200", user: "ops", host: "bastion", port: 2200},
		{in: "ssh://bastion/path", bad: true},
		{in: "ops@", bad: true},
		{in: "bastion:0", bad: true},
		{in: "bastion:x", bad: true},
		{in: "a b", bad: true},
	}
	for _, tc := range cases {
		u, h, p, err := parseJump(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q accepted as %q %q %d", tc.in, u, h, p)
			}
			continue
		}
		if err != nil || u != tc.user || h != tc.host || p != tc.port {
			t.Errorf("%q: %q %q %d %v", tc.in, u, h, p, err)
		}
	}
}

// TestOpenSSHAgreesWithSSH: for each name, the address, port, user and
// ProxyJump pcmkeys reads from a config are what OpenSSH's own ssh -G
// makes of it.
func TestOpenSSHAgreesWithSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("ssh (openssh-client) is not installed")
	}
	isolatedHome(t)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	conf := openSSHFile(t, t.TempDir(), `
Host web web2
    HostName 10.1.2.3
    Port 2222
Host web
    Port 3333
    User first
Host *.lab !db.lab
    HostName %h.internal
    ProxyJump ops@bastion:2200
Host db.*
    User dba
Match host m1
    Port 4444
Host Upper
    User upper
Host *.example
    Port 5555
Host a.example
    Port 6666
    User later
`)
	d, err := newSSHDialer(SSHConfig{User: me.Username, Sudo: true, KnownHosts: "/kh", OpenSSHConfig: conf})
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	for _, name := range []string{"web", "web2", "x.lab", "db.lab", "m1", "Upper", "UPPER", "a.example", "plain", "10.0.0.1"} {
		out, err := exec.Command("ssh", "-G", "-F", conf, name).Output()
		if err != nil {
			t.Fatalf("ssh -G %s: %v", name, err)
		}
		g := map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok {
				if _, dup := g[k]; !dup {
					g[k] = v
				}
			}
		}
		r, err := d.resolve(SSHEndpoint{Name: name, Address: name, Port: 22})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		o, _ := d.options(name)
		if !strings.EqualFold(r.ep.Address, g["hostname"]) || strconv.Itoa(r.ep.Port) != g["port"] || r.user != g["user"] || o.proxyJump != g["proxyjump"] {
			t.Errorf("%s: pcmkeys %s@%s:%d via %q; ssh -G %s@%s:%s via %q", name, r.user, r.ep.Address, r.ep.Port, o.proxyJump,
				g["user"], g["hostname"], g["port"], g["proxyjump"])
		}
	}
}
