package rotate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/pcmkeys/pcmkeys/config"
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
