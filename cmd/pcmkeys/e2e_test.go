package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/internal/testroot"
	"github.com/pcmkeys/pcmkeys/internal/vaultlab"
	"github.com/pcmkeys/pcmkeys/keystore/filestore"
)

// quickstart writes a config like testdata/quickstart's, with the host root
// and store in temporary directories, and returns its path and the root.
func quickstart(t *testing.T, mode string) (string, *testroot.Root) {
	t.Helper()
	root := testroot.New(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf("cluster: quickstart\nstore: {type: file, path: store}\naudit: {path: audit.jsonl}\nidentity_mode: %s\ncib: {server: localhost, port: 5403}\nnodes:\n  - {name: localhost, local: true, root: %s}\n", mode, root.Dir)
	p := filepath.Join(dir, "pcmkeys.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, root
}

// TestQuickstartConfig checks the config the README's first command uses:
// a file store and one local node under a root prefix, no Vault, no SSH.
func TestQuickstartConfig(t *testing.T) {
	cfg, err := config.Load("../../testdata/quickstart/pcmkeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../../testdata/quickstart")
	if cfg.Store.Type != "file" || cfg.Store.Path != filepath.Join(abs, "state/store") || len(cfg.Hosts) != 1 {
		t.Fatalf("quickstart config: %+v", cfg)
	}
	if h := cfg.Hosts[0]; !h.Local || h.Root != filepath.Join(abs, "state/localhost") || h.Role != config.RoleNode {
		t.Errorf("quickstart host: %+v", h)
	}
}

// TestMainJob is the quickstart's main job end to end: init, then onboard
// alice; every file has the right content, owner and mode, and no output
// holds a key.
func TestMainJob(t *testing.T) {
	cfg, root := quickstart(t, "shared")
	code, initOut, initErr := cli(t, false, "--config", cfg, "init")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, initErr)
	}
	code, onOut, onErr := cli(t, false, "--config", cfg, "onboard", "alice", "--client", "localhost")
	if code != 0 {
		t.Fatalf("onboard: exit %d: %s", code, onErr)
	}
	cib := mustRead(t, root.Path("etc/pacemaker/cib-credentials"))
	entries, err := credfile.ParseCIBCredentials(cib)
	if err != nil || len(entries) != 1 || entries[0].Identity != "hacluster" {
		t.Fatalf("cib-credentials: %v", err)
	}
	client, err := credfile.ParseClientKey(mustRead(t, root.Path("home/alice/.pcmkeys/quickstart.key")))
	if err != nil || !client.Equal(entries[0].Key) {
		t.Fatalf("alice's key does not match the server's: %v", err)
	}
	auth := mustRead(t, root.Path("etc/pacemaker/authkey"))
	if len(auth) != 4096 {
		t.Errorf("authkey is %d bytes", len(auth))
	}
	for _, f := range []struct {
		path     string
		uid, gid int
	}{
		{"etc/pacemaker/cib-credentials", root.Hacluster, root.Haclient},
		{"etc/pacemaker/authkey", root.Hacluster, root.Haclient},
		{"home/alice/.pcmkeys/quickstart.key", root.Alice, root.Alice},
		{"home/alice/.pcmkeys/quickstart.env", root.Alice, root.Alice},
	} {
		var st unix.Stat_t
		if err := unix.Lstat(root.Path(f.path), &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Uid) != f.uid || int(st.Gid) != f.gid || st.Mode&0o7777 != 0o600 {
			t.Errorf("%s is %d:%d %o", f.path, st.Uid, st.Gid, st.Mode&0o7777)
		}
	}
	if !strings.Contains(initErr, "pcmkeys: [1/1] localhost ok\n") {
		t.Errorf("init's progress on stderr (not a terminal) lacks the host line: %q", initErr)
	}
	for _, want := range []string{"export CIB_server=localhost", "export CIB_port=5403", "export CIB_user=hacluster", "export CIB_encrypted=true", "export CIB_key_file=/home/alice/.pcmkeys/quickstart.key"} {
		if !strings.Contains(onOut, want) {
			t.Errorf("onboard output lacks %q:\n%s", want, onOut)
		}
	}
	all := initOut + initErr + onOut + onErr
	for _, secret := range [][]byte{client, auth[:32]} {
		for _, form := range []string{hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret), string(secret)} {
			if strings.Contains(all, form[:32]) {
				t.Fatal("output contains key material")
			}
		}
	}
	// GnuTLS, as pacemaker-based uses it, accepts alice's key file against
	// the node's cib-credentials.
	requireGnuTLS(t)
	if ok, log := gnutlsHandshake(t, root.Path("etc/pacemaker/cib-credentials"), "hacluster", root.Path("home/alice/.pcmkeys/quickstart.key")); !ok {
		t.Errorf("GnuTLS refused the delivered key:\n%s", log)
	}
}

func TestGnuTLSRefusesWrongKey(t *testing.T) {
	requireGnuTLS(t)
	dir := t.TempDir()
	right := filepath.Join(dir, "right.key")
	wrong := filepath.Join(dir, "wrong.key")
	for _, p := range []string{right, wrong} {
		if code, _, stderr := cli(t, false, "keygen", "psk", "--out", p); code != 0 {
			t.Fatal(stderr)
		}
	}
	key, err := credfile.ParseClientKey(mustRead(t, right))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := credfile.RenderCIBCredentials([]credfile.Entry{{Identity: "hacluster", Key: key}})
	if err != nil {
		t.Fatal(err)
	}
	credsPath := filepath.Join(dir, "cib-credentials")
	if err := os.WriteFile(credsPath, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, log := gnutlsHandshake(t, credsPath, "hacluster", right); !ok {
		t.Fatalf("GnuTLS refused the right key:\n%s", log)
	}
	if ok, _ := gnutlsHandshake(t, credsPath, "hacluster", wrong); ok {
		t.Error("GnuTLS accepted a wrong key")
	}
	if ok, _ := gnutlsHandshake(t, credsPath, "alice", right); ok {
		t.Error("GnuTLS accepted an identity that is not in the file")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func requireGnuTLS(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the GnuTLS peers run in a network namespace of their own, which needs root (CI runs as root)")
	}
	for _, bin := range []string{"gnutls-serv", "gnutls-cli", "unshare", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (apt-get install gnutls-bin iproute2; .ci/run does)", bin)
		}
	}
}

// gnutlsHandshake runs gnutls-serv with credsPath as its PSK password file
// and gnutls-cli with the key in keyPath, both inside a new network
// namespace so nothing listens on the machine itself, and reports whether
// the handshake completed. (gnutls-cli takes the key only in its argv; the
// key is a test key in a namespace of the test's own.)
func gnutlsHandshake(t *testing.T, credsPath, identity, keyPath string) (bool, string) {
	t.Helper()
	script := `set -u
ip link set lo up
gnutls-serv --pskpasswd "$1" --priority NORMAL:+DHE-PSK:+PSK -p 5403 >/dev/null 2>&1 &
srv=$!
i=0
while ! (echo >/dev/tcp/127.0.0.1/5403) 2>/dev/null; do
	i=$((i+1)); [ $i -lt 100 ] || { echo "gnutls-serv did not start"; kill $srv; exit 2; }
	sleep 0.05
done
echo | timeout 10 gnutls-cli --priority NORMAL:+DHE-PSK:+PSK --pskusername "$2" --pskkey "$(cat "$3")" -p 5403 127.0.0.1 2>&1
rc=$?
kill $srv
exit $rc`
	out, err := exec.Command("unshare", "--net", "bash", "-c", script, "gnutls", credsPath, identity, keyPath).CombinedOutput()
	ok := err == nil && bytes.Contains(out, []byte("Handshake was completed"))
	return ok, string(out)
}

// TestMainJobVault follows the README's Vault steps: mount KV v2, set
// VAULT_ADDR and VAULT_TOKEN, point the config at it, init, onboard.
func TestMainJobVault(t *testing.T) {
	srv := vaultlab.Start(t)
	m := srv.MountKV2(t)
	t.Setenv("VAULT_ADDR", srv.Addr)
	t.Setenv("VAULT_TOKEN", srv.RootToken)
	root := testroot.New(t)
	cfg := filepath.Join(t.TempDir(), "pcmkeys.yaml")
	doc := fmt.Sprintf("cluster: prod\nstore: {type: vault, mount: %s}\naudit: {path: audit.jsonl}\ncib: {port: 5403}\nnodes:\n  - {name: node1, local: true, root: %s}\n", m, root.Dir)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, false, "--config", cfg, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	if code, _, stderr := cli(t, false, "--config", cfg, "onboard", "alice", "--client", "node1"); code != 0 {
		t.Fatalf("onboard: %d %s", code, stderr)
	}
	sec, err := srv.Client(t).KVv2(m).Get(context.Background(), "pcmkeys/prod/cib/hacluster")
	if err != nil {
		t.Fatal(err)
	}
	client := mustRead(t, root.Path("home/alice/.pcmkeys/prod.key"))
	if sec.Data["key"] != string(client) {
		t.Error("alice's key file does not hold the key Vault has at pcmkeys/prod/cib/hacluster")
	}
	if _, err := srv.Client(t).KVv2(m).Get(context.Background(), "pcmkeys/prod/admins/alice"); err != nil {
		t.Errorf("alice's record: %v", err)
	}
	// The policy command reads mount and prefix from the same config.
	code, out, _ := cli(t, false, "--config", cfg, "policy", "vault", "--role", "self", "--user", "alice")
	if code != 0 || !strings.Contains(out, fmt.Sprintf(`path "%s/data/pcmkeys/prod/cib/hacluster"`, m)) {
		t.Errorf("policy for self: %d\n%s", code, out)
	}
}

// TestAdoptRunningCluster (issue 12): adopting a running cluster is one
// step, import, which creates the store and no key of its own: the store
// then holds exactly the node's keys, as version 1. init afterwards adds
// only what the cluster lacked (hacluster's password), never a CIB key or
// authkey nobody uses.
func TestAdoptRunningCluster(t *testing.T) {
	cfg, root := quickstart(t, "shared")
	psk, auth := strings.Repeat("ab", 32), bytes.Repeat([]byte{0x5a}, 4096)
	root.WriteFile(t, "etc/pacemaker/cib-credentials", []byte("hacluster:"+psk+"\n"), root.Hacluster, root.Haclient, 0o600)
	root.WriteFile(t, "etc/pacemaker/authkey", auth, root.Hacluster, root.Haclient, 0o600)
	if code, _, stderr := cli(t, false, "--config", cfg, "import", "--host", "localhost"); code != 0 {
		t.Fatalf("import into no store: exit %d: %s", code, stderr)
	}
	code, out, stderr := cli(t, false, "--config", cfg, "-o", "json", "status")
	if code != 0 {
		t.Fatalf("status after the adoption: exit %d: %s\n%s", code, stderr, out)
	}
	var st struct {
		Credentials []struct {
			ID      string `json:"id"`
			Version int    `json:"version"`
		} `json:"credentials"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(st.Credentials)
	if got != "[{authkey 1} {cib/hacluster 1}]" {
		t.Errorf("store after import: %s, want the node's two keys as version 1", got)
	}
	if code, _, stderr := cli(t, false, "--config", cfg, "init"); code != 0 {
		t.Fatalf("init after import: exit %d: %s", code, stderr)
	}
	if b := root.Read(t, "etc/pacemaker/authkey"); !bytes.Equal(b, auth) {
		t.Error("init replaced the adopted authkey")
	}
	_, out, _ = cli(t, false, "--config", cfg, "-o", "json", "status")
	json.Unmarshal([]byte(out), &st)
	if got := fmt.Sprint(st.Credentials); got != "[{authkey 1} {cib/hacluster 1} {password/hacluster 1}]" {
		t.Errorf("store after init: %s: init made keys nobody uses", got)
	}
}

// TestLockContention (issue 13): a run that finds the cluster's lock held
// by another run exits 5, naming the holder; with --wait it waits (and
// says so with -v) for the holder to finish, and then runs.
func TestLockContention(t *testing.T) {
	cfg, _ := quickstart(t, "shared")
	if code, _, stderr := cli(t, false, "--config", cfg, "init"); code != 0 {
		t.Fatal(stderr)
	}
	dir := filepath.Dir(cfg)
	st, err := filestore.Open(filepath.Join(dir, "store"), filepath.Join(dir, "store.agekey"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	lease, err := st.Lock(ctx, "the scheduled job", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, false, "--config", cfg, "push"); code != 5 || !strings.Contains(stderr, "the scheduled job") {
		t.Errorf("push while locked: exit %d: %s", code, stderr)
	}
	stderr := &syncBuffer{}
	exited := make(chan int, 1)
	go func() {
		code, _ := cliTo(stderr, false, "--config", cfg, "--wait", "30s", "-v", "push")
		exited <- code
	}()
	// Release the lock once the run waits for it, not before.
	if !stderr.WaitFor("waiting for the cluster's lock", 20*time.Second) {
		t.Fatalf("push --wait says nothing of waiting for the lock:\n%s", stderr.String())
	}
	if err := st.Unlock(ctx, lease); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("push --wait 30s: exit %d: %s", code, stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("push --wait 30s still running 40 s after the lock was released:\n%s", stderr.String())
	}
}
