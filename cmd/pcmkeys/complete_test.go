package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/filestore"
)

// completeQuickstart copies testdata/quickstart's config into a temporary
// directory, gives its host the users scripts/quickstart.sh gives it (mapped
// to you when you are not root), and runs the quickstart's init and onboard
// alice --client localhost there, in identity mode mode. It returns the
// config's path.
func completeQuickstart(t *testing.T, mode string) string {
	t.Helper()
	data, err := os.ReadFile("../../testdata/quickstart/pcmkeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("identity_mode: shared"), []byte("identity_mode: "+mode), 1)
	dir := t.TempDir()
	host := filepath.Join(dir, "state/localhost")
	hc, hg, al, ag := 990, 990, 1001, 1001
	if os.Geteuid() != 0 {
		hc, hg, al, ag = os.Geteuid(), os.Getegid(), os.Geteuid(), os.Getegid()
	}
	for _, d := range []string{"etc", "home/alice"} {
		if err := os.MkdirAll(filepath.Join(host, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nhacluster:x:%d:%d::/var/lib/pacemaker:/usr/sbin/nologin\nalice:x:%d:%d::/home/alice:/bin/sh\n", hc, hg, al, ag),
		"etc/group":  fmt.Sprintf("root:x:0:\nhaclient:x:%d:\nalice:x:%d:\n", hg, ag),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(host, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(host, "home/alice"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(host, "home/alice"), al, ag); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "pcmkeys.yaml")
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init"}, {"onboard", "alice", "--client", "localhost"}} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"--config", cfg}, args...), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
	}
	return cfg
}

// complete runs cobra's hidden __complete as the shells do and returns the
// offered lines ("value" or "value\tdescription") and the directive.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append([]string{"__complete"}, args...), strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("__complete %q: exit %d: %s", args, code, errb.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], ":") {
		t.Fatalf("__complete %q: no directive in %q", args, out.String())
	}
	if strings.Contains(errb.String(), "pcmkeys:") {
		t.Errorf("__complete %q wrote an error: %s", args, errb.String())
	}
	return lines[:len(lines)-1], lines[len(lines)-1]
}

const (
	noFiles  = ":4"  // ShellCompDirectiveNoFileComp
	extFiles = ":8"  // ShellCompDirectiveFilterFileExt
	dirsOnly = ":16" // ShellCompDirectiveFilterDirs
)

func TestCompleteQuickstart(t *testing.T) {
	cfg := completeQuickstart(t, "shared")
	audit := filepath.Join(filepath.Dir(cfg), "state/audit.jsonl")
	auditBefore, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	alice := "alice\tidentity hacluster, on localhost"
	for _, tc := range []struct {
		args      []string
		want      []string
		directive string
	}{
		{[]string{"push", "--host", ""}, []string{"localhost\tnode"}, noFiles},
		{[]string{"push", "--host", "x"}, nil, noFiles},
		{[]string{"import", "--host", "local"}, []string{"localhost\tnode"}, noFiles},
		{[]string{"onboard", "bob", "--client", ""}, []string{"localhost\tnode"}, noFiles},
		{[]string{"revoke", ""}, []string{alice}, noFiles},
		{[]string{"revoke", "alice", ""}, nil, noFiles},
		{[]string{"rotate", "a"}, []string{alice}, noFiles},
		{[]string{"rotate", "b"}, nil, noFiles},
		{[]string{"rotate", "--cib", ""}, []string{alice}, noFiles},
		{[]string{"onboard", "alice", ""}, nil, noFiles},
		{[]string{"policy", "vault", "--user", ""}, []string{alice}, noFiles},
		{[]string{"policy", "vault", "--role", ""}, []string{"admin", "rotator", "auditor", "self"}, noFiles},
		{[]string{"rotate", "--override", "f"}, []string{"fencing", "failed-actions"}, noFiles},
		{[]string{"--output", ""}, []string{"text\thuman-readable", "json\tone JSON document"}, noFiles},
		{[]string{"status", ""}, nil, noFiles},
		{[]string{"push", "--parallel", ""}, nil, noFiles},
		{[]string{"keygen", ""}, []string{"psk", "authkey"}, noFiles},
		{[]string{"status", "--config", ""}, []string{"yaml", "yml"}, extFiles},
		{[]string{"man", ""}, nil, dirsOnly},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got, dir := complete(t, append([]string{"--config", cfg}, tc.args...)...)
			if !slices.Equal(got, tc.want) || dir != tc.directive {
				t.Errorf("got %q %s, want %q %s", got, dir, tc.want, tc.directive)
			}
		})
	}
	if after, _ := os.ReadFile(audit); !bytes.Equal(after, auditBefore) {
		t.Errorf("completion wrote to the audit trail:\n%s", after[len(auditBefore):])
	}
}

// TestCompleteByFlagName: a command added later gets completion for
// --host, --admin, --role and --identity, and for a USER or HOST argument,
// without registering anything itself.
func TestCompleteByFlagName(t *testing.T) {
	for _, mode := range []struct {
		mode       string
		identities []string
	}{
		{"shared", []string{"hacluster\tshared by every admin"}},
		{"per-user", []string{"alice\tadmin alice"}},
	} {
		t.Run(mode.mode, func(t *testing.T) {
			cfg := completeQuickstart(t, mode.mode)
			g := &globals{in: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, stdoutIsTerminal: func() bool { return false }}
			root := newRootCmd(g)
			later := &cobra.Command{Use: "later USER [--host NAME] HOST...", RunE: func(*cobra.Command, []string) error { return nil }}
			for _, f := range []string{"host", "admin", "role", "identity", "key-file"} {
				later.Flags().String(f, "", "")
			}
			later.Flags().Bool("force", false, "")
			root.AddCommand(later)
			registerCompletions(g, root)
			var out bytes.Buffer
			root.SetOut(&out)
			adminLine := "alice\tidentity " + map[string]string{"shared": "hacluster", "per-user": "alice"}[mode.mode] + ", on localhost"
			for _, tc := range []struct {
				args      []string
				want      []string
				directive string
			}{
				{[]string{"later", "--host", ""}, []string{"localhost\tnode"}, noFiles},
				{[]string{"later", "--admin", ""}, []string{adminLine}, noFiles},
				{[]string{"later", "--role", ""}, []string{"node", "remote_node", "client"}, noFiles},
				{[]string{"later", "--identity", ""}, mode.identities, noFiles},
				{[]string{"later", "--key-file", ""}, nil, ":0"}, // a path: the shell's files
				{[]string{"later", ""}, []string{adminLine}, noFiles},
				{[]string{"later", "alice", ""}, nil, noFiles}, // USER is one argument
			} {
				out.Reset()
				root.SetArgs(append([]string{"__complete", "--config", cfg}, tc.args...))
				if err := root.Execute(); err != nil {
					t.Fatal(err)
				}
				lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
				got, dir := lines[:len(lines)-1], lines[len(lines)-1]
				if !slices.Equal(got, tc.want) || dir != tc.directive {
					t.Errorf("%q: got %q %s, want %q %s", tc.args, got, dir, tc.want, tc.directive)
				}
			}
		})
	}
}

func TestFirstArg(t *testing.T) {
	for _, tc := range []struct {
		use      string
		word     string
		variadic bool
	}{
		{"rotate [USER...] [--cib] [--authkey] [--due]", "USER", true},
		{"revoke USER...", "USER", true},
		{"onboard USER --client HOST... [--key-file PATH]", "USER", false},
		{"push [--host NAME...]", "", false},
		{"import --host NAME [--force]", "", false},
		{"vault --role admin|rotator|auditor|self [--user USER]", "", false},
		{"remove --from=HOST USER", "USER", false},
		{"status", "", false},
	} {
		if w, v := firstArg(tc.use); w != tc.word || v != tc.variadic {
			t.Errorf("firstArg(%q) = %q, %v; want %q, %v", tc.use, w, v, tc.word, tc.variadic)
		}
	}
}

// TestCompleteRevokedFinished: an admin whose revocation finished is no
// longer offered; one whose revocation is unfinished still is (revoke
// again finishes it).
func TestCompleteRevokedFinished(t *testing.T) {
	cfg := completeQuickstart(t, "shared")
	dir := filepath.Dir(cfg)
	store, err := filestore.Open(filepath.Join(dir, "state/store"), filepath.Join(dir, "state/store.agekey"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	now := time.Now()
	for _, a := range []keystore.Admin{
		{User: "bob", Identity: "hacluster", Onboarded: now, Revoked: now},
		{User: "carol", Identity: "hacluster", Onboarded: now, Revoked: now, Finished: now},
	} {
		if _, err := store.PutAdmin(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := complete(t, "--config", cfg, "revoke", "")
	want := []string{"alice\tidentity hacluster, on localhost", "bob\trevocation unfinished"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestCompleteOffersNothingOnError: a config that does not load, a store
// that does not open, offer nothing and say nothing, with exit 0.
func TestCompleteOffersNothingOnError(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("cluster: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nostore := filepath.Join(dir, "nostore.yaml")
	if err := os.WriteFile(nostore, []byte("cluster: c\nstore: {type: file, path: missing}\ncib: {port: 5403}\nnodes: [{name: n1}]\naudit: {path: a.jsonl}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--config", bad, "push", "--host", ""}, nil},
		{[]string{"--config", filepath.Join(dir, "absent.yaml"), "revoke", ""}, nil},
		{[]string{"--config", nostore, "revoke", ""}, nil},
		{[]string{"--config", nostore, "push", "--host", ""}, []string{"n1\tnode"}},
	} {
		got, d := complete(t, tc.args...)
		if !slices.Equal(got, tc.want) || d != noFiles {
			t.Errorf("%q: got %q %s, want %q %s", tc.args, got, d, tc.want, noFiles)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("completion created the file store")
	}
}

// TestCompleteVaultOnlyWithToken: with AppRole, completion never logs in
// (no connection reaches Vault); with a token it asks, and a Vault that
// does not answer costs completeTimeout, then nothing is offered.
func TestCompleteVaultOnlyWithToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			defer c.Close() // held open, never answered
		}
	}()
	t.Setenv("VAULT_SKIP_VERIFY", "")
	t.Setenv("VAULT_TOKEN", "not-a-real-token")
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret-id")
	if err := os.WriteFile(secret, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("cluster: c\ncib: {port: 5403}\nnodes: [{name: n1}]\naudit: {path: a.jsonl}\nstore: {type: vault, address: 'http://%s', auth: %%s}\n", ln.Addr())
	write := func(name, auth string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, fmt.Appendf(nil, base, auth), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	approle := write("approle.yaml", "{method: approle, role_id: r, secret_id_file: "+secret+"}")
	token := write("token.yaml", "{method: token}")

	if got, _ := complete(t, "--config", approle, "revoke", ""); len(got) != 0 || conns.Load() != 0 {
		t.Errorf("approle: offered %q after %d connection(s) to Vault; want nothing and none", got, conns.Load())
	}
	start := time.Now()
	got, _ := complete(t, "--config", token, "revoke", "")
	took := time.Since(start)
	if len(got) != 0 || conns.Load() == 0 {
		t.Errorf("token: offered %q after %d connection(s) to Vault; want nothing after asking it", got, conns.Load())
	}
	if took > completeTimeout+2*time.Second {
		t.Errorf("token: completion against a silent Vault took %s", took)
	}
}

// TestCompleteExampleConfig: the example config the packages install as
// /etc/pcmkeys/pcmkeys.yaml loads, and its hosts are offered.
func TestCompleteExampleConfig(t *testing.T) {
	got, d := complete(t, "--config", "../../packaging/pcmkeys.yaml", "push", "--host", "")
	if want := []string{"node1\tnode", "node2\tnode"}; !slices.Equal(got, want) || d != noFiles {
		t.Errorf("got %q %s, want %q %s", got, d, want, noFiles)
	}
}
