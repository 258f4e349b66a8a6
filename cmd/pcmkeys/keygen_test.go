package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// cli runs pcmkeys with args in the test process and returns exit code,
// stdout and stderr. terminal says whether stdout should count as a
// terminal.
func cli(t *testing.T, terminal bool, args ...string) (int, string, string) {
	t.Helper()
	var stderr bytes.Buffer
	code, stdout := cliTo(&stderr, terminal, args...)
	return code, stdout, stderr.String()
}

// cliTo is cli writing stderr to a writer of the caller's (which may watch
// it while the command runs).
func cliTo(stderr io.Writer, terminal bool, args ...string) (int, string) {
	var stdout bytes.Buffer
	g := &globals{in: strings.NewReader(""), stdout: &stdout, stderr: stderr, stdoutIsTerminal: func() bool { return terminal }}
	err := execute(g, args)
	if err != nil {
		fmt.Fprintln(stderr, "pcmkeys:", err)
	}
	return exitCode(err), stdout.String()
}

// TestKeygenAuthkey: what the scripts cannot see (testdata/script/keygen_*
// hold keygen's argv contract): the --out file's size and mode, an existing
// file left as it was with no temporary file beside it, and raw bytes
// refused to a terminal but given to a pipe.
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
