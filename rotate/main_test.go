package rotate

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
	"github.com/pcmkeys/pcmkeys/internal/vaultlab"
)

// vaultSrv is a real Vault shared by this package's tests, and vaultMount
// a KV v2 mount on it; each cluster takes a prefix of its own.
var (
	vaultSrv   *vaultlab.Server
	vaultMount string
)

func TestMain(m *testing.M) { vaultlab.Main(m, &vaultSrv) }

// storeKinds are the stores every lifecycle test runs against.
var storeKinds = []string{"file", "vault"}

// storeYAML returns the config's store section for kind, skipping the test
// when Vault is not available.
func storeYAML(t *testing.T, kind, dir string) string {
	t.Helper()
	if kind == "file" {
		return fmt.Sprintf("{type: file, path: %s/store}", dir)
	}
	if vaultSrv == nil {
		t.Skip(vaultlab.SkipReason())
	}
	if vaultMount == "" {
		vaultMount = vaultSrv.MountKV2(t)
	}
	b := make([]byte, 6)
	rand.Read(b)
	t.Setenv("VAULT_TOKEN", vaultSrv.RootToken)
	return fmt.Sprintf("{type: vault, address: %q, mount: %s, prefix: pcmkeys/t%s}", vaultSrv.Addr, vaultMount, hex.EncodeToString(b))
}

// labEnv parses a lab's config doc (as DIR/pcmkeys.yaml), opens its store
// (creating a file store) and returns an Env over them, closed when the
// test ends.
func labEnv(t *testing.T, doc, dir string) *Env {
	t.Helper()
	cfg, err := config.Parse([]byte(doc), dir+"/pcmkeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(context.Background(), cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Config: cfg, Store: st, Operator: "tester", Parallel: 8}
	t.Cleanup(func() { e.Close(); st.Close() })
	return e
}

// labDoc is the config of a cluster of SSH lab hosts, reached as root:
// which hosts (by index in the lab) have which role, and what else the
// test needs. Every lab test builds its config here.
type labDoc struct {
	store string // "file" (default) or "vault"
	// storeDoc, if set, is the store's YAML as it is (configs that share
	// one store).
	storeDoc string
	mode     string // identity_mode: shared (default) or per-user
	// commandTimeout is ssh.command_timeout ("" for the default).
	commandTimeout string
	// cibPort is cib.port (5403 by default).
	cibPort int
	// audit writes an audit trail in the test's directory.
	audit bool
	// extra is more top-level YAML.
	extra                   string
	nodes, remotes, clients []int
}

// yaml renders the config for lab, with the store and trail in dir.
func (d labDoc) yaml(t *testing.T, lab *sshlab.Lab, dir string) string {
	t.Helper()
	store, mode, port := cmp.Or(d.store, "file"), cmp.Or(d.mode, "shared"), cmp.Or(d.cibPort, 5403)
	var b strings.Builder
	storeDoc := d.storeDoc
	if storeDoc == "" {
		storeDoc = storeYAML(t, store, dir)
	}
	fmt.Fprintf(&b, "cluster: lab\nstore: %s\nidentity_mode: %s\n", storeDoc, mode)
	// The machine's ~/.ssh/config is no part of a lab.
	fmt.Fprintf(&b, "ssh: {user: root, known_hosts: %s, identity_files: [%s], use_ssh_config: false", lab.KnownHosts, lab.IdentityFile)
	if d.commandTimeout != "" {
		fmt.Fprintf(&b, ", command_timeout: %s", d.commandTimeout)
	}
	fmt.Fprintf(&b, "}\ncib: {port: %d}\n", port)
	if d.audit {
		fmt.Fprintf(&b, "audit: {path: %s/audit.jsonl}\n", dir)
	}
	if d.extra != "" {
		b.WriteString(strings.TrimSuffix(d.extra, "\n") + "\n")
	}
	for _, role := range []struct {
		key   string
		hosts []int
	}{{"nodes", d.nodes}, {"remote_nodes", d.remotes}, {"clients", d.clients}} {
		if len(role.hosts) == 0 {
			continue
		}
		b.WriteString(role.key + ":\n")
		for _, i := range role.hosts {
			fmt.Fprintf(&b, "  - {name: host%02d, address: 127.0.0.1, port: %d}\n", i, lab.Hosts[i].Port)
		}
	}
	return b.String()
}

// env is labEnv over d's config.
func (d labDoc) env(t *testing.T, lab *sshlab.Lab, dir string) *Env {
	t.Helper()
	return labEnv(t, d.yaml(t, lab, dir), dir)
}
