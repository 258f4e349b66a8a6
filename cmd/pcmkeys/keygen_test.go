package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cli runs pcmkeys with args and returns exit code, stdout and stderr.
// terminal says whether stdout should count as a terminal.
func cli(t *testing.T, terminal bool, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	g := &globals{in: strings.NewReader(""), stdout: &stdout, stderr: &stderr, stdoutIsTerminal: func() bool { return terminal }}
	err := execute(g, args)
	if err != nil {
		stderr.WriteString("pcmkeys: " + err.Error() + "\n")
	}
	return exitCode(err), stdout.String(), stderr.String()
}

func TestKeygenPSK(t *testing.T) {
	code, out, _ := cli(t, true, "keygen", "psk")
	key := strings.TrimSuffix(out, "\n")
	if b, err := hex.DecodeString(key); code != 0 || err != nil || len(b) != 32 {
		t.Fatalf("keygen psk: exit %d, %q", code, out)
	}
	code, out, _ = cli(t, false, "keygen", "psk", "--bytes", "64")
	if b, _ := hex.DecodeString(strings.TrimSpace(out)); code != 0 || len(b) != 64 {
		t.Errorf("--bytes 64: exit %d, %d bytes", code, len(b))
	}
	code, out, _ = cli(t, false, "keygen", "psk", "-o", "json")
	var res keygenResult
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || len(res.Key) != 64 || !strings.HasPrefix(res.Fingerprint, "SHA256:") {
		t.Errorf("json: exit %d, %q", code, out)
	}
}

func TestKeygenAuthkey(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "authkey")
	code, _, stderr := cli(t, true, "keygen", "authkey", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Lstat(out)
	if err != nil || fi.Size() != 4096 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("authkey file: %v %v", fi, err)
	}
	first, _ := os.ReadFile(out)
	// An existing file is never replaced.
	code, _, stderr = cli(t, false, "keygen", "authkey", "--out", out, "--bytes", "256")
	if again, _ := os.ReadFile(out); code != 2 || !bytes.Equal(first, again) || !strings.Contains(stderr, "file exists") {
		t.Errorf("second keygen over the file: exit %d, %s", code, stderr)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("a temp file was left behind: %v", entries)
	}
	// Raw bytes never go to a terminal, but may go to a pipe.
	code, stdout, stderr := cli(t, true, "keygen", "authkey")
	if code != 2 || stdout != "" || !strings.Contains(stderr, "terminal") {
		t.Errorf("authkey to a terminal: exit %d, %d bytes out, %s", code, len(stdout), stderr)
	}
	code, stdout, _ = cli(t, false, "keygen", "authkey", "--bytes", "256")
	if code != 0 || len(stdout) != 256 {
		t.Errorf("authkey to a pipe: exit %d, %d bytes", code, len(stdout))
	}
	pskOut := filepath.Join(dir, "client.key")
	if code, _, _ := cli(t, false, "keygen", "psk", "--out", pskOut); code != 0 {
		t.Fatal("psk --out failed")
	}
	if b, _ := os.ReadFile(pskOut); len(b) != 64 || bytes.ContainsAny(b, "\n\r") {
		t.Errorf("psk file is %q, want 64 bare hex digits", b)
	}
}

func TestKeygenRefusals(t *testing.T) {
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"keygen", "psk", "--bytes", "8"}, "a psk must be 16 to 512 bytes"},
		{[]string{"keygen", "psk", "--bytes", "513"}, "out of range"},
		{[]string{"keygen", "authkey", "--bytes", "16", "--out", "/nonexistent/x"}, "out of range"},
		{[]string{"keygen", "rsa"}, "unknown key kind"},
		{[]string{"keygen"}, "accepts 1 arg"},
		{[]string{"keygen", "psk", "--bytes", "x"}, "invalid argument"},
		{[]string{"keygen", "psk", "--output", "yaml"}, "--output must be text or json"},
		{[]string{"keygen", "authkey", "-o", "json"}, "terminal or into JSON"},
		{[]string{"nosuch"}, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := cli(t, false, tc.args...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, stdout, stderr, tc.msg)
			}
		})
	}
}

func TestVersionAndCompletion(t *testing.T) {
	if code, out, _ := cli(t, false, "version"); code != 0 || !strings.HasPrefix(out, "pcmkeys ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, out, _ := cli(t, false, "completion", "bash"); code != 0 || !strings.Contains(out, "pcmkeys") {
		t.Errorf("completion bash: exit %d", code)
	}
}
