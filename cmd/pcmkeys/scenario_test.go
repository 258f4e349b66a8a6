package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/internal/testroot"
	"github.com/pcmkeys/pcmkeys/keys"
)

// TestScenarioNoLeaks runs the lifecycle through the CLI — init, onboard
// two admins, status, tamper, status, push, rotate, rotate the authkey,
// revoke — with logging on, then searches every byte of output, logs and
// the audit trail for every key that existed, in hex and base64: zero hits.
func TestScenarioNoLeaks(t *testing.T) {
	root := testroot.New(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pcmkeys.yaml")
	doc := fmt.Sprintf("cluster: sc\nstore: {type: file, path: store}\nidentity_mode: per-user\ncib: {port: 5403}\naudit: {path: audit.jsonl}\nnodes:\n  - {name: n1, local: true, root: %s}\n", root.Dir)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var everything strings.Builder
	var secrets []keys.Secret
	collect := func() { // every key the hosts hold now
		if b, err := os.ReadFile(root.Path("etc/pacemaker/cib-credentials")); err == nil {
			entries, _ := credfile.ParseCIBCredentials(b)
			for _, e := range entries {
				secrets = append(secrets, e.Key)
			}
		}
		if b, err := os.ReadFile(root.Path("etc/pacemaker/authkey")); err == nil {
			secrets = append(secrets, b)
		}
	}
	step := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := cli(t, false, append([]string{"--config", cfg, "--verbose"}, args...)...)
		everything.WriteString(out + errOut)
		if code != want {
			t.Fatalf("pcmkeys %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
		collect()
		return out
	}
	step(0, "init")
	step(0, "onboard", "alice", "--client", "n1")
	step(0, "onboard", "bob", "--client", "n1")
	step(0, "status")
	os.Chmod(root.Path("etc/pacemaker/authkey"), 0o640)
	if out := step(4, "status"); !strings.Contains(out, "wrong mode") {
		t.Errorf("status did not report the wrong mode:\n%s", out)
	}
	step(0, "push")
	step(0, "status")
	step(0, "rotate")
	step(0, "rotate", "--authkey")
	step(0, "--dry-run", "revoke", "alice")
	step(0, "revoke", "alice")
	out := step(0, "status", "-o", "json")
	var st struct{ Findings int }
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Findings != 0 {
		t.Errorf("status json: %v %s", err, out)
	}
	auditOut := step(0, "audit")
	for _, action := range []string{" init ok", " onboard ok [alice n1]", " push ok", " rotate ok", " revoke ok [alice]"} {
		if !strings.Contains(auditOut, action) {
			t.Errorf("audit lacks %q:\n%s", action, auditOut)
		}
	}
	if strings.Contains(auditOut, "dry") {
		t.Error("the dry run was audited")
	}
	trail, _ := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	everything.Write(trail)
	all := everything.String()
	if len(secrets) < 6 {
		t.Fatalf("only %d keys seen", len(secrets))
	}
	for _, k := range secrets {
		for _, form := range []string{hex.EncodeToString(k), strings.ToUpper(hex.EncodeToString(k)), base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k)} {
			if strings.Contains(all, form[:24]) {
				t.Fatalf("output, logs or audit hold key material (%d bytes searched)", len(all))
			}
		}
	}
	t.Logf("%d keys searched for in %d bytes of output, logs and audit: 0 hits", len(secrets), len(all))
}
