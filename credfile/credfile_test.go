package credfile

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/keys"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const golden = "../testdata/credfile"

// fixedKey returns a deterministic key of n bytes for golden files.
func fixedKey(seed byte, n int) keys.Secret {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func goldenCompare(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join(golden, name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n got %q\nwant %q", name, got, want)
	}
}

func TestRenderGolden(t *testing.T) {
	entries := []Entry{
		{Identity: "zed", Key: fixedKey(3, 32)},
		{Identity: "hacluster", Key: fixedKey(1, 32)},
		{Identity: "alice", Key: fixedKey(2, 64)},
	}
	out, err := RenderCIBCredentials(entries)
	if err != nil {
		t.Fatal(err)
	}
	goldenCompare(t, "cib-credentials.golden", out)
	ck, err := RenderClientKey(fixedKey(1, 32))
	if err != nil {
		t.Fatal(err)
	}
	goldenCompare(t, "client.key.golden", ck)
	env, err := RenderClientEnv(ClientEnv{Server: "node1.example.com", Port: 5403, User: "hacluster", KeyFile: "/home/o'brien/.pcmkeys/prod.key"})
	if err != nil {
		t.Fatal(err)
	}
	goldenCompare(t, "client.env.golden", env)
}

func TestParseGolden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(golden, "cib-credentials.golden"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseCIBCredentials(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alice", "hacluster", "zed"}
	if len(entries) != 3 {
		t.Fatalf("%d entries", len(entries))
	}
	for i, e := range entries {
		if e.Identity != want[i] {
			t.Errorf("entry %d = %s, want %s", i, e.Identity, want[i])
		}
	}
	if !entries[1].Key.Equal(fixedKey(1, 32)) || !entries[0].Key.Equal(fixedKey(2, 64)) {
		t.Error("keys did not round-trip")
	}
	ck, _ := os.ReadFile(filepath.Join(golden, "client.key.golden"))
	k, err := ParseClientKey(ck)
	if err != nil || !k.Equal(fixedKey(1, 32)) {
		t.Errorf("client key: %v", err)
	}
	// Uppercase hex and a missing final newline are read as GnuTLS reads them.
	up := bytes.ToUpper(bytes.TrimSuffix(data, []byte("\n")))
	up = bytes.Replace(up, []byte("ALICE"), []byte("alice"), 1)
	up = bytes.Replace(up, []byte("HACLUSTER"), []byte("hacluster"), 1)
	up = bytes.Replace(up, []byte("ZED"), []byte("zed"), 1)
	if e2, err := ParseCIBCredentials(up); err != nil || len(e2) != 3 || !e2[1].Key.Equal(entries[1].Key) {
		t.Errorf("uppercase file: %v", err)
	}
}

// TestParseMalformed reads each file in testdata/credfile/bad and checks
// the error names the right lines, and never echoes any key material.
func TestParseMalformed(t *testing.T) {
	cases := map[string][]string{
		"crlf.txt":          {"line 1: carriage return"},
		"blank.txt":         {"line 2: blank line"},
		"comment.txt":       {"line 1: comment line"},
		"nocolon.txt":       {"line 2: no ':' between identity and key"},
		"badident.txt":      {"line 1: invalid identity (has a character other", "line 2: invalid identity (empty)"},
		"oddhex.txt":        {"line 1: key has an odd number of hex digits"},
		"nothex.txt":        {"line 1: key is not hexadecimal"},
		"shortkey.txt":      {"line 1: key is 8 bytes"},
		"duplicate.txt":     {"line 3: same identity as line 1"},
		"trailingspace.txt": {"line 1: key is not hexadecimal"},
		"many.txt":          {"line 1:", "line 3:", "line 4:"},
	}
	for name, wants := range cases {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(golden, "bad", name))
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseCIBCredentials(data)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			assertNoEcho(t, data, err.Error())
		})
	}
}

// messageFragments is every piece of text a parse error is made of, with
// numbers written as N. An error built only from these cannot repeat any
// byte of the file it describes.
var messageFragments = []string{
	"malformed cib-credentials: ", "malformed credential file: ", "line N: ", "; ",
	"blank line", "carriage return (CRLF line endings break the key; use LF only)",
	"comment line (GnuTLS does not support comments)", "no ':' between identity and key",
	"invalid identity (empty)", "invalid identity (longer than N bytes)", "invalid identity (starts with '#')",
	"invalid identity (has a character other than letters, digits, '_', '.', '-' and '@')",
	"empty key", "key is not hexadecimal (a space, tab or other character is in it)",
	"key has an odd number of hex digits", "key is not hexadecimal", "key is N bytes (a PSK must be N to N)",
	"same identity as line N", "client key file is N bytes, longer than any PSK",
	"client key file has a line ending at byte N; it must hold the bare hex key only", "client key file: ",
	"authkey: ", "key size out of range: a authkey must be N to N bytes, got N",
	"N bytes is more than the N a cib-credentials file may have",
}

var digits = regexp.MustCompile(`[0-9]+`)

// assertNoEcho fails unless msg is made only of messageFragments, so that
// no part of the file — key material or not — is repeated in it.
func assertNoEcho(t *testing.T, data []byte, msg string) {
	t.Helper()
	frags := append([]string(nil), messageFragments...)
	sort.Slice(frags, func(i, j int) bool { return len(frags[i]) > len(frags[j]) })
	rest := digits.ReplaceAllString(msg, "N")
	for _, f := range frags {
		rest = strings.ReplaceAll(rest, f, "")
	}
	if rest != "" {
		t.Fatalf("error has text that is not a known fragment (%q), it may echo the file: %q", rest, msg)
	}
}

func TestRenderRefuses(t *testing.T) {
	k := fixedKey(1, 32)
	bad := [][]Entry{
		{{Identity: "a:b", Key: k}},
		{{Identity: "a\nb", Key: k}},
		{{Identity: "#a", Key: k}},
		{{Identity: "", Key: k}},
		{{Identity: "a", Key: k[:8]}},
		{{Identity: "a", Key: k}, {Identity: "a", Key: k}},
	}
	for _, e := range bad {
		if _, err := RenderCIBCredentials(e); err == nil {
			t.Errorf("RenderCIBCredentials(%q) succeeded", e[0].Identity)
		}
	}
	if out, err := RenderCIBCredentials(nil); err != nil || len(out) != 0 {
		t.Errorf("empty file: %q %v", out, err)
	}
}

func TestClientKeyAndAuthkey(t *testing.T) {
	k := fixedKey(9, 32)
	h := hex.EncodeToString(k)
	for _, bad := range []string{h + "\n", h + "\r\n", "", h[:63], h + "zz", strings.Repeat("00", 8), "hacluster:" + h} {
		_, err := ParseClientKey([]byte(bad))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseClientKey(%d bytes) = %v", len(bad), err)
			continue
		}
		assertNoEcho(t, []byte(bad), err.Error())
	}
	auth := fixedKey(5, 4096)
	auth[4095] = '\n' // a newline is part of an authkey, not an ending
	out, err := RenderAuthkey(auth)
	if err != nil || !bytes.Equal(out, auth) {
		t.Fatal("authkey not rendered byte for byte")
	}
	back, err := ParseAuthkey(out)
	if err != nil || !back.Equal(auth) {
		t.Fatal("authkey not parsed byte for byte")
	}
	if _, err := ParseAuthkey(make([]byte, 31)); !errors.Is(err, ErrMalformed) {
		t.Errorf("31-byte authkey: %v", err)
	}
}

func TestClientEnv(t *testing.T) {
	env := ClientEnv{Server: "n1", Port: 5403, User: "alice", KeyFile: "/k"}
	out, err := RenderClientEnv(env)
	if err != nil || !strings.Contains(string(out), "export CIB_encrypted='true'\n") {
		t.Fatalf("%s %v", out, err)
	}
	for _, bad := range []ClientEnv{{Server: "n1", Port: 0, User: "a", KeyFile: "/k"}, {Server: "n1", Port: 1, User: "a", KeyFile: "/k\n"}, {Port: 1, User: "a", KeyFile: "/k"}} {
		if _, err := RenderClientEnv(bad); err == nil {
			t.Errorf("RenderClientEnv(%+v) succeeded", bad)
		}
	}
}
