package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestSSHOpenSSHFiles: what pcmkeys takes from OpenSSH's own files — the
// client config, the known_hosts files read besides ssh.known_hosts, the
// default identities — with HOME pointed at a temp dir.
func TestSSHOpenSSHFiles(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	dot := func(f string) string { return filepath.Join(home, ".ssh", f) }
	base := "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes: [{name: n1}]\n"
	cases := []struct {
		name, ssh  string
		config     string
		known      string
		extra, ids []string
		problem    string
	}{
		{"defaults", "", dot("config"), dot("known_hosts"), []string{GlobalKnownHosts}, []string{dot("id_ed25519"), dot("id_ecdsa"), dot("id_rsa")}, ""},
		{"a known_hosts of pcmkeys's own", "ssh: {known_hosts: kh}\n", dot("config"), "/etc/pcmkeys/kh",
			[]string{dot("known_hosts"), GlobalKnownHosts}, []string{dot("id_ed25519"), dot("id_ecdsa"), dot("id_rsa")}, ""},
		{"identity files written: no defaults", "ssh: {identity_files: [/k]}\n", dot("config"), dot("known_hosts"), []string{GlobalKnownHosts}, nil, ""},
		{"another config file", "ssh: {config_file: ssh/config}\n", "/etc/pcmkeys/ssh/config", dot("known_hosts"), []string{GlobalKnownHosts}, []string{dot("id_ed25519"), dot("id_ecdsa"), dot("id_rsa")}, ""},
		{"config off", "ssh: {use_ssh_config: false}\n", "", dot("known_hosts"), []string{GlobalKnownHosts}, []string{dot("id_ed25519"), dot("id_ecdsa"), dot("id_rsa")}, ""},
		{"config on, said", "ssh: {use_ssh_config: true}\n", dot("config"), dot("known_hosts"), []string{GlobalKnownHosts}, []string{dot("id_ed25519"), dot("id_ecdsa"), dot("id_rsa")}, ""},
		{"a file with the config off", "ssh: {use_ssh_config: false, config_file: /c}\n", "", "", nil, nil, "line 5: ssh.config_file: is set, but use_ssh_config is false"},
		{"use_ssh_config not a bool", "ssh: {use_ssh_config: sometimes}\n", "", "", nil, nil, "line 5:"},
		{"a config file with a newline", "ssh: {config_file: \"/a\\nb\"}\n", "", "", nil, nil, "ssh.config_file: path contains a control character"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(base+tc.ssh), "/etc/pcmkeys/pcmkeys.yaml")
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Errorf("error %v, want %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.SSH
			if s.ConfigFile != tc.config || s.KnownHosts != tc.known || strings.Join(s.ExtraKnownHosts, " ") != strings.Join(tc.extra, " ") ||
				strings.Join(s.DefaultIdentityFiles, " ") != strings.Join(tc.ids, " ") {
				t.Errorf("config %q known %q extra %q ids %q\nwant   %q       %q       %q     %q", s.ConfigFile, s.KnownHosts, s.ExtraKnownHosts, s.DefaultIdentityFiles,
					tc.config, tc.known, tc.extra, tc.ids)
			}
		})
	}
	// Without a home, what needs none: the global known_hosts, no config,
	// no default identities, and no error.
	t.Setenv("HOME", "")
	cfg, err := Parse([]byte(base+"ssh: {known_hosts: /kh}\n"), "/etc/pcmkeys/pcmkeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.SSH; s.ConfigFile != "" || strings.Join(s.ExtraKnownHosts, " ") != GlobalKnownHosts || s.DefaultIdentityFiles != nil {
		t.Errorf("without a home: %+v", s)
	}
}

// TestHostUser: a host's own user: is kept apart from ssh.user (both win
// over ~/.ssh/config's User: rotate's sshConfig puts them together), and
// whether ssh.user and a port were written.
func TestHostUser(t *testing.T) {
	base := "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\n"
	cases := []struct {
		name, doc string
		users     string // each host's User, space-separated ("-" for none)
		userSet   bool
		problem   string
	}{
		{"none written", "nodes: [{name: n1}, {name: n2}]\n", "- -", false, ""},
		{"per host", "ssh: {become: sudo}\nnodes: [{name: n1, user: deploy}, {name: n2}]\n", "deploy -", false, ""},
		{"ssh.user and a host's own", "ssh: {user: admin, become: sudo}\nnodes: [{name: n1, user: root}, {name: n2}]\n", "root -", true, ""},
		{"ssh.user root, written", "ssh: {user: root}\nnodes: [{name: n1}]\n", "-", true, ""},
		{"not root without sudo", "nodes: [{name: n1, user: deploy}]\n", "", false, `line 4: nodes[0].user: user "deploy" is not root: set ssh.become: sudo`},
		{"a bad name", "ssh: {become: sudo}\nnodes: [{name: n1, user: \"a:b\"}]\n", "", false, "nodes[0].user:"},
		{"on a local host", "nodes: [{name: n1, local: true, user: root}]\n", "", false, "nodes[0].user: a local host is written directly: user does not apply"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(base+tc.doc), "/etc/pcmkeys/pcmkeys.yaml")
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Errorf("error %v, want %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range cfg.Hosts {
				if h.User == "" {
					got = append(got, "-")
				} else {
					got = append(got, h.User)
				}
			}
			if strings.Join(got, " ") != tc.users || cfg.SSH.UserSet != tc.userSet {
				t.Errorf("users %q, ssh.user written %v; want %q, %v", got, cfg.SSH.UserSet, tc.users, tc.userSet)
			}
		})
	}
	cfg, err := Parse([]byte(base+"nodes: [{name: n1, port: 22}, {name: n2}]\n"), "/etc/pcmkeys/pcmkeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Hosts[0].PortSet || cfg.Hosts[1].PortSet || cfg.Hosts[1].Port != 22 {
		t.Errorf("port written: %+v", cfg.Hosts)
	}
}

// TestLogin: what wins over ~/.ssh/config for each host, as the transport
// gets it, also after a program changed ssh.user in a parsed config.
func TestLogin(t *testing.T) {
	doc := "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nssh: {become: sudo%s}\n" +
		"nodes: [{name: n1}, {name: n2, address: 192.0.2.2, port: 22, user: deploy}, {name: n3, address: n3, port: 2222}]\n"
	cases := []struct {
		name, ssh string
		want      []string // address port user, per host
	}{
		{"ssh.user not written", "", []string{" 0 ", "192.0.2.2 22 deploy", " 2222 "}},
		{"ssh.user written", ", user: admin", []string{" 0 admin", "192.0.2.2 22 deploy", " 2222 admin"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(fmt.Sprintf(doc, tc.ssh)), "/etc/pcmkeys/pcmkeys.yaml")
			if err != nil {
				t.Fatal(err)
			}
			for i, h := range cfg.Hosts {
				a, p, u := cfg.Login(h)
				if got := fmt.Sprintf("%s %d %s", a, p, u); got != tc.want[i] {
					t.Errorf("%s: %q, want %q", h.Name, got, tc.want[i])
				}
			}
			if tc.ssh == "" {
				return
			}
			changed := *cfg
			changed.SSH.User = "other"
			if _, _, u := changed.Login(changed.Hosts[0]); u != "other" {
				t.Errorf("after ssh.user changed: %q", u)
			}
		})
	}
}
