package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/policies"
)

func TestLoadFull(t *testing.T) {
	cfg, err := Load("../testdata/config/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../testdata/config")
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"cluster", cfg.Cluster, "prod-ha"},
		{"store", cfg.Store, Store{Type: "vault", Address: "https://vault.example.com:8200", Mount: "secret", Prefix: "pcmkeys/prod-ha", Auth: VaultAuth{Method: "approle", RoleID: "r-123", SecretIDFile: filepath.Join(abs, "secret-id")}}},
		{"identity mode", cfg.Policy.IdentityMode, policies.PerUser},
		{"ssh user", cfg.SSH.User, "admin"},
		{"become", cfg.SSH.Become, "sudo"},
		{"identity file relative to config", cfg.SSH.IdentityFiles[0], filepath.Join(abs, "keys/id_ed25519")},
		{"timeout", cfg.SSH.ConnectTimeout, 5 * time.Second},
		{"cib", cfg.CIB, CIB{Server: "cib.example.com", Port: 5403, ManagePassword: true, VerifyCommand: "cibadmin --query"}},
		{"hosts", len(cfg.Hosts), 4},
		{"node2 port", cfg.Hosts[1].Port, 2222},
		{"node1 default port", cfg.Hosts[0].Port, 22},
		{"remote role", cfg.Hosts[2].Role, RoleRemoteNode},
		{"client address defaults to name", cfg.Hosts[3].Address, "ws-alice"},
		{"psk bytes", cfg.Policy.PSKBytes, 64},
		{"authkey bytes", cfg.Policy.AuthkeyBytes, 256},
		{"rotate cib", cfg.Policy.RotateAfter.CIB, 30 * policies.Day},
		{"rotate authkey", cfg.Policy.RotateAfter.Authkey, 364 * policies.Day},
		{"cib mode", cfg.Policy.Files[policies.CIBCredentials].Mode.Perm(), os.FileMode(0o400)},
		{"authkey default path", cfg.Policy.Files[policies.Authkey].Path, "/etc/pacemaker/authkey"},
		{"client key path with cluster", cfg.Policy.Files[policies.ClientKey].Path, "~/.config/pacemaker/prod-ha.key"},
		{"client env default", cfg.Policy.Files[policies.ClientEnv].Path, "~/.pcmkeys/prod-ha.env"},
		{"client dirs", strings.Join(cfg.Policy.ClientDirs, ","), "/srv/cib-keys"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte("cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes: [{name: n1, address: 10.0.0.1}]\n"), "/etc/pcmkeys/pcmkeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Path != "/etc/pcmkeys/st" || cfg.Store.Identity != "/etc/pcmkeys/st.agekey" {
		t.Errorf("store = %+v", cfg.Store)
	}
	if !cfg.CIB.CloseSessions || len(cfg.Policy.ClientDirs) != 0 {
		t.Errorf("close_sessions defaults to true, client_dirs to none: %+v %v", cfg.CIB, cfg.Policy.ClientDirs)
	}
	if cfg.CIB.Server != "10.0.0.1" || cfg.SSH.User != "root" || cfg.SSH.Become != "none" || cfg.SSH.ConnectTimeout != 10*time.Second {
		t.Errorf("defaults: %+v %+v", cfg.CIB, cfg.SSH)
	}
	if cfg.Policy.IdentityMode != policies.Shared || cfg.Policy.PSKBytes != 32 || cfg.Policy.AuthkeyBytes != 4096 {
		t.Errorf("policy defaults: %+v", cfg.Policy)
	}
	fp := cfg.Policy.Files[policies.CIBCredentials]
	if fp.Owner != "hacluster" || fp.Group != "haclient" || fp.Mode != 0o600 {
		t.Errorf("cib_credentials default policy: %+v", fp)
	}
}

// TestProblems checks that each bad config is refused with every problem
// reported at once, on the right line.
func TestProblems(t *testing.T) {
	base := "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes: [{name: n1}]\n"
	cases := []struct {
		name string
		doc  string
		want []string
	}{
		{"unknown top-level key", base + "colour: blue\n", []string{"line 5: unknown key \"colour\" in the top level"}},
		{"unknown nested key", "cluster: c\nstore: {type: file, path: st, pth: x}\ncib: {port: 5403}\nnodes: [{name: n1}]\n", []string{"line 2: unknown key \"pth\" in store"}},
		{"wrong type", "cluster: c\nstore: {type: file, path: st}\ncib: {port: many}\nnodes: [{name: n1, port: [1]}]\n", []string{"line 3:", "line 4:"}},
		{"several at once", "cluster: a:b\nstore: {type: nope}\ncib: {port: 70000}\nidentity_mode: solo\nnodes: [{name: 'n 1'}, {name: n2, port: 0}]\n", []string{
			"line 1: cluster:", "line 2: store.type:", "line 3: cib.port:", "line 4: identity_mode:", "line 5: nodes[0].name:"}},
		{"duplicate host", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes:\n  - {name: n1}\nclients:\n  - {name: n1}\n", []string{"line 7: clients[0].name: host \"n1\" is listed twice"}},
		{"no nodes", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\n", []string{"nodes: at least one cluster node"}},
		{"missing port", "cluster: c\nstore: {type: file, path: st}\nnodes: [{name: n1}]\n", []string{"cib.port: required"}},
		{"loose mode", base + "policy:\n  files:\n    authkey: {mode: \"0644\"}\n", []string{"line 7: policy.files.authkey: unsafe file mode"}},
		{"bad octal", base + "policy:\n  files:\n    authkey: {mode: \"rw\"}\n", []string{"line 7: mode \"rw\" is not an octal"}},
		{"unknown file kind", base + "policy:\n  files:\n    keytab: {mode: \"0600\"}\n", []string{"unknown file \"keytab\""}},
		{"relative server path", base + "policy:\n  files:\n    authkey: {path: etc/authkey}\n", []string{"is not absolute"}},
		{"dotdot client path", base + "policy:\n  files:\n    client_key: {path: \"~/../root/k\"}\n", []string{"'..'"}},
		{"same client paths", base + "policy:\n  files:\n    client_key: {path: \"~/k\"}\n    client_env: {path: \"~/k\"}\n", []string{"client_key and client_env are both"}},
		{"small psk", base + "policy: {psk_bytes: 8}\n", []string{"psk_bytes: key size out of range"}},
		{"bad age", base + "policy: {rotate_after: {cib: 90}}\n", []string{"rotate_after.cib"}},
		{"non-root without sudo", base + "ssh: {user: admin}\n", []string{"set become: sudo"}},
		{"bad duration", base + "ssh: {connect_timeout: soon}\n", []string{"\"soon\" is not a positive duration"}},
		{"vault fields on file store", "cluster: c\nstore: {type: file, path: st, mount: x}\ncib: {port: 5403}\nnodes: [{name: n1}]\n", []string{"mount and prefix are for a vault store"}},
		{"bad vault prefix", "cluster: c\nstore: {type: vault, prefix: 'a/../b'}\ncib: {port: 5403}\nnodes: [{name: n1}]\n", []string{"store.prefix"}},
		{"local with address", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes: [{name: n1, local: true, address: x}]\n", []string{"address and port do not apply"}},
		{"remote root relative", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes: [{name: n1, root: x}]\n", []string{"must be absolute"}},
		{"empty", "", []string{"file is empty"}},
		{"not yaml", "cluster: [\n", []string{"line 1"}},
		{"two documents", base + "---\ncluster: d\n", []string{"more than one YAML document"}},
		{"vault auth incomplete", "cluster: c\nstore: {type: vault, auth: {method: approle, username: u}}\ncib: {port: 5403}\nnodes: [{name: n1}]\n", []string{
			"store.auth.role_id: required for method approle", "store.auth.secret_id_file: required", "store.auth.username: does not apply"}},
		{"vault auth unknown", "cluster: c\nstore: {type: vault, auth: {method: ldap}}\ncib: {port: 5403}\nnodes: [{name: n1}]\n", []string{"want token, approle or userpass"}},
		{"vault address", "cluster: c\nstore: {type: vault, address: 'vault:8200'}\ncib: {port: 5403}\nnodes: [{name: n1}]\n", []string{"want https://HOST:PORT"}},
		{"auth on file store", "cluster: c\nstore: {type: file, path: st, auth: {method: token}}\ncib: {port: 5403}\nnodes: [{name: n1}]\n", []string{"address and auth are for a vault store"}},
		{"huge", strings.Repeat("#", MaxConfigBytes+1), []string{"larger than"}},
		{"client dir in /etc", base + "policy: {client_dirs: [/etc/cib-keys]}\n", []string{"line 5: policy.client_dirs[0]:", "system directory"}},
		{"client dir /home", base + "policy: {client_dirs: [/srv/ok, /home]}\n", []string{"policy.client_dirs[1]:", "system directory"}},
		{"client dir relative", base + "policy: {client_dirs: [keys]}\n", []string{"policy.client_dirs[0]:", "not absolute"}},
		{"same host, other case", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes:\n  - {name: node1}\nclients:\n  - {name: Node1}\n", []string{"line 7: clients[0].name:", "not case-sensitive"}},
		{"same address and port", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes:\n  - {name: n1, address: 10.0.0.1}\n  - {name: n2, address: 10.0.0.1, port: 22}\n", []string{"line 6: nodes[1].address:", "is host \"n1\" again"}},
		{"port 0", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes: [{name: n1, port: 0}]\n", []string{"nodes[0].port: 0 is not a TCP port"}},
		{"address not a host", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes: [{name: n1, address: '$(id)'}]\n", []string{"nodes[0].address:", "not a host name or an IP address"}},
		{"cib server not a host", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403, server: 'a b'}\nnodes: [{name: n1}]\n", []string{"cib.server:", "not a host name"}},
		{"Go names never shown, type and other problems in one round", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nssh: {knownhosts: x}\nnodes: [[n1]]\nidentity_mode: solo\n", []string{
			"line 4: unknown key \"knownhosts\" in ssh", "line 5: expected a host (a mapping such as {name: node1}), found a list", "line 6: identity_mode:"}},
		{"sticky mode", base + "policy:\n  files:\n    authkey: {mode: \"1600\"}\n", []string{"1600 has setuid, setgid or sticky bits"}},
		{"bad password mode", "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403, password: maybe}\nnodes: [{name: n1}]\n", []string{"line 3: cib.password", "want managed or unmanaged"}},
		{"client dir with space", base + "policy: {client_dirs: ['/srv/cib keys']}\n", []string{"whitespace"}},
		{"close_sessions not a bool", base[:len(base)-len("nodes: [{name: n1}]\n")-len("cib: {port: 5403}\n")] + "cib: {port: 5403, close_sessions: maybe}\nnodes: [{name: n1}]\n", []string{"line 3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "/x/pcmkeys.yaml")
			if err == nil {
				t.Fatal("bad config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			for _, goName := range []string{"config.", "!!", "unmarshal", "File "} {
				if strings.Contains(err.Error(), goName) {
					t.Errorf("error speaks Go (%q), not the file's words:\n%v", goName, err)
				}
			}
		})
	}
}

func TestFind(t *testing.T) {
	t.Setenv("PCMKEYS_CONFIG", "/env/c.yaml")
	if got := Find("/flag.yaml"); got != "/flag.yaml" {
		t.Errorf("flag: %s", got)
	}
	if got := Find(""); got != "/env/c.yaml" {
		t.Errorf("env: %s", got)
	}
	t.Setenv("PCMKEYS_CONFIG", "")
	t.Chdir(t.TempDir())
	if got := Find(""); got != "/etc/pcmkeys/pcmkeys.yaml" {
		t.Errorf("default: %s", got)
	}
	os.WriteFile("pcmkeys.yaml", nil, 0o600)
	if got := Find(""); got != "pcmkeys.yaml" {
		t.Errorf("cwd: %s", got)
	}
}

// FuzzParse: no panic on any input, and a config that parses is valid.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../testdata/config/full.yaml"); err == nil {
		f.Add(b)
	}
	if b, err := os.ReadFile("../testdata/quickstart/pcmkeys.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes: [{name: n1}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "/x/pcmkeys.yaml")
		if err != nil {
			return
		}
		if err := cfg.Policy.Validate(); err != nil {
			t.Fatalf("accepted config has an invalid policy: %v", err)
		}
		if len(cfg.HostsWithRole(RoleNode)) == 0 {
			t.Fatal("accepted config has no nodes")
		}
	})
}
