package credfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func addSeeds(f *testing.F) {
	for _, p := range []string{"cib-credentials.golden", "client.key.golden"} {
		if b, err := os.ReadFile(filepath.Join(golden, p)); err == nil {
			f.Add(b)
		}
	}
	bad, _ := filepath.Glob(filepath.Join(golden, "bad", "*.txt"))
	for _, p := range bad {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

// FuzzParseCIBCredentials: no panic; what parses renders and parses back to
// the same entries; an error never repeats key material.
func FuzzParseCIBCredentials(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseCIBCredentials(data)
		if err != nil {
			assertNoEcho(t, data, err.Error())
			return
		}
		out, err := RenderCIBCredentials(entries)
		if err != nil {
			t.Fatalf("parsed entries do not render: %v", err)
		}
		again, err := ParseCIBCredentials(out)
		if err != nil || len(again) != len(entries) {
			t.Fatalf("rendered file does not parse back: %v", err)
		}
		for i := range again {
			if again[i].Identity != entries[i].Identity || !again[i].Key.Equal(entries[i].Key) {
				t.Fatalf("entry %d changed in the round trip", i)
			}
		}
		if bytes.Contains(out, []byte("\r")) || (len(out) > 0 && out[len(out)-1] != '\n') {
			t.Fatal("rendered file has a CR or no final LF")
		}
	})
}

// FuzzParseClientKey: no panic; a parsed key renders back to the same bytes
// in lowercase; errors never repeat the input.
func FuzzParseClientKey(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseClientKey(data)
		if err != nil {
			assertNoEcho(t, data, err.Error())
			return
		}
		out, err := RenderClientKey(k)
		if err != nil || !bytes.Equal(out, bytes.ToLower(data)) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzParseAuthkey: the key is the file's exact bytes, or a size error.
func FuzzParseAuthkey(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseAuthkey(data)
		if err != nil {
			assertNoEcho(t, data, err.Error())
			return
		}
		if !bytes.Equal(k, data) {
			t.Fatal("authkey is not the file's exact bytes")
		}
	})
}
