// Command vaultdev runs a real, unsealed, in-memory Vault core on a
// loopback port for pcmkeys's tests. It is built from Vault's own Go module
// (vault.TestCoreUnsealedWithConfig and vaulthttp.TestServer), in a module
// of its own so that pcmkeys's go.mod stays small. See docs/testing.md
// ("A real Vault") and internal/vaultlab, which builds and starts it.
//
// It writes one JSON line to stdout once the server is listening:
//
//	{"addr":"http://127.0.0.1:PORT","root_token":"…","unseal_keys":["base64",…]}
//
// and serves until stdin is closed or it gets SIGINT or SIGTERM. This is a
// test server: its root token and unseal keys are test values.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"testing"

	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/builtin/credential/approle"
	"github.com/hashicorp/vault/builtin/credential/userpass"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
)

// tb is the testing.TB that Vault's test helpers want, outside a test.
// The embedded interface is nil: only the methods below may be called.
type tb struct {
	testing.TB
	cleanups []func()
	tmp      string
}

func (t *tb) Helper()                      {}
func (t *tb) Name() string                 { return "vaultdev" }
func (t *tb) Log(args ...any)              { fmt.Fprintln(os.Stderr, args...) }
func (t *tb) Logf(f string, args ...any)   { fmt.Fprintf(os.Stderr, f+"\n", args...) }
func (t *tb) Error(args ...any)            { t.Log(args...) }
func (t *tb) Errorf(f string, args ...any) { t.Logf(f, args...) }
func (t *tb) Fatal(args ...any)            { t.Log(args...); t.exit(1) }
func (t *tb) Fatalf(f string, args ...any) { t.Logf(f, args...); t.exit(1) }
func (t *tb) Failed() bool                 { return false }
func (t *tb) Skipped() bool                { return false }
func (t *tb) Cleanup(f func())             { t.cleanups = append(t.cleanups, f) }
func (t *tb) Setenv(k, v string)           { os.Setenv(k, v) }
func (t *tb) TempDir() string {
	if t.tmp == "" {
		d, err := os.MkdirTemp("", "vaultdev-")
		if err != nil {
			t.Fatal(err)
		}
		t.tmp = d
	}
	return t.tmp
}

func (t *tb) exit(code int) {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	if t.tmp != "" {
		os.RemoveAll(t.tmp)
	}
	os.Exit(code)
}

func main() {
	t := &tb{}
	core, keys, token := vault.TestCoreUnsealedWithConfig(t, &vault.CoreConfig{
		LogicalBackends: map[string]logical.Factory{"kv": kv.Factory},
		CredentialBackends: map[string]logical.Factory{
			"approle":  approle.Factory,
			"userpass": userpass.Factory,
		},
	})
	_, addr := vaulthttp.TestServer(t, core)
	info := struct {
		Addr       string   `json:"addr"`
		RootToken  string   `json:"root_token"`
		UnsealKeys []string `json:"unseal_keys"`
	}{Addr: addr, RootToken: token}
	for _, k := range keys {
		info.UnsealKeys = append(info.UnsealKeys, base64.StdEncoding.EncodeToString(k))
	}
	if err := json.NewEncoder(os.Stdout).Encode(info); err != nil {
		t.Fatal(err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	go func() {
		io.Copy(io.Discard, os.Stdin) // the parent closed our stdin: it is gone
		stop <- syscall.SIGTERM
	}()
	<-stop
	t.exit(0)
}
