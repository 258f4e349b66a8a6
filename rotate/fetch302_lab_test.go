package rotate

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/pcmkeys/pcmkeys/policies"
)

// TestFetchSelfService302 (issue 10): alice, on her own machine (host00,
// where a real 3.0.2 pacemaker-based runs), as herself, with a Vault token
// holding only her "self" policy, runs pcmkeys fetch: her key, password
// and env files appear, 0600 and hers, and her real cibadmin -Q works with
// nothing else. A rerun changes nothing. bob with alice's token is refused
// with Vault's words.
func TestFetchSelfService302(t *testing.T) {
	l := newP302Lab(t, "vault")
	ctx := context.Background()
	cfg := l.e.Config

	// alice's token: the self policy only.
	hcl, err := policies.VaultPolicy(policies.VaultPolicyRequest{Role: policies.VaultSelf, Mount: cfg.Store.Mount, Prefix: cfg.Store.Prefix, User: "alice", Identity: "hacluster"})
	if err != nil {
		t.Fatal(err)
	}
	root := vaultSrv.Client(t)
	if err := root.Sys().PutPolicy("self-alice", hcl); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"self-alice"}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}

	// Her machine reaches Vault at 127.0.0.1:8200.
	u, err := url.Parse(vaultSrv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := l.node.ForwardInto("127.0.0.1:8200", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	// pcmkeys and a config she can read.
	dir, err := os.MkdirTemp("", "pcmkeys-fetch-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "pcmkeys")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/pcmkeys").CombinedOutput(); err != nil {
		t.Fatalf("build pcmkeys: %v\n%s", err, out)
	}
	doc := fmt.Sprintf("cluster: lab\nstore: {type: vault, address: %q, mount: %s, prefix: %s}\ncib: {port: %d, server: 127.0.0.1}\nnodes: [{name: host00, address: 127.0.0.1}]\n",
		u.Scheme+"://127.0.0.1:8200", cfg.Store.Mount, cfg.Store.Prefix, cfg.CIB.Port)
	if err := os.WriteFile(filepath.Join(dir, "pcmkeys.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	setup := `set -e
rm -f /home/alice/.pcmkeys/lab.key /home/alice/.pcmkeys/lab.env /home/alice/.pcmkeys/lab.passwd
for u in alice bob; do umask 077; printf %s "$1" > /home/$u/.vault-token; chown $u:$u /home/$u/.vault-token; done`
	if out, err := l.node.Exec(ctx, setup, tok.Auth.ClientToken); err != nil {
		t.Fatal(err, out)
	}
	fetch := func(user string) (string, error) {
		return l.node.Exec(ctx, `exec setpriv --reuid "$1" --regid "$1" --init-groups env -i HOME=/home/"$1" PATH=/usr/bin:/bin "$2" --config "$3" fetch`, user, bin, filepath.Join(dir, "pcmkeys.yaml"))
	}

	out, err := fetch("alice")
	if err != nil {
		t.Fatalf("alice's fetch: %v\n%s", err, out)
	}
	files, _ := l.node.Exec(ctx, "stat -c '%n %U %a' /home/alice/.pcmkeys/lab.key /home/alice/.pcmkeys/lab.passwd /home/alice/.pcmkeys/lab.env")
	if files != "/home/alice/.pcmkeys/lab.key alice 600\n/home/alice/.pcmkeys/lab.passwd alice 600\n/home/alice/.pcmkeys/lab.env alice 600\n" {
		t.Errorf("alice's files after fetch:\n%s", files)
	}
	if err := l.cib(t, "alice", p302Env("alice")); err != nil {
		t.Fatalf("alice's cibadmin after fetch: %v\n%s", err, l.log())
	}
	out, err = fetch("alice")
	if err != nil || strings.Count(out, "in sync") != 3 {
		t.Errorf("a second fetch should change nothing: %v\n%s", err, out)
	}
	out, err = fetch("bob")
	if err == nil || !strings.Contains(out, "permission denied") || !strings.Contains(out, "admins/bob") {
		t.Errorf("bob with alice's token: %v\n%s", err, out)
	}
	t.Logf("bob with alice's token: %s", strings.TrimSpace(out))
}
