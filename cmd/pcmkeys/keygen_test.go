package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
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

// TestKeygenAuthkeyOwner (issue 12): as root, keygen authkey --out gives
// the file to hacluster:haclient, which Pacemaker needs (a root:root 0600
// authkey cannot be read by the controller, which runs as hacluster);
// --owner and --group choose others; an unknown one is bad input.
func TestKeygenAuthkeyOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root; CI runs as root")
	}
	hc, err1 := user.Lookup("hacluster")
	hg, err2 := user.LookupGroup("haclient")
	if err1 != nil || err2 != nil {
		t.Skip("no hacluster/haclient on this machine (apt-get install pacemaker-remote; .ci/run does)")
	}
	dir := t.TempDir()
	owner := func(p string) string {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	}
	out := filepath.Join(dir, "authkey")
	if code, _, stderr := cli(t, false, "keygen", "authkey", "--out", out); code != 0 {
		t.Fatal(stderr)
	}
	if got, want := owner(out), hc.Uid+":"+hg.Gid; got != want {
		t.Errorf("authkey owned by %s, want hacluster:haclient (%s)", got, want)
	}
	out2 := filepath.Join(dir, "authkey2")
	if code, _, stderr := cli(t, false, "keygen", "authkey", "--out", out2, "--owner", "root", "--group", "root"); code != 0 || owner(out2) != "0:0" {
		t.Errorf("--owner root --group root: exit %d %s, owner %s", code, stderr, owner(out2))
	}
	if code, _, stderr := cli(t, false, "keygen", "authkey", "--out", filepath.Join(dir, "x"), "--owner", "nobody-such"); code != 2 || !strings.Contains(stderr, "no such user") {
		t.Errorf("unknown owner: exit %d %s", code, stderr)
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
	if code, out, _ := cli(t, false, "--version"); code != 0 || !strings.HasPrefix(out, "pcmkeys version ") {
		t.Errorf("--version: %d %q", code, out)
	}
	if code, out, _ := cli(t, false, "completion", "bash"); code != 0 || !strings.Contains(out, "pcmkeys") {
		t.Errorf("completion bash: exit %d", code)
	}
}
