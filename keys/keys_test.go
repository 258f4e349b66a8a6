package keys

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestGenerateSizes(t *testing.T) {
	cases := []struct {
		kind Kind
		n    int
		ok   bool
	}{
		{PSK, 32, true}, {PSK, 16, true}, {PSK, 512, true}, {PSK, 15, false}, {PSK, 0, false}, {PSK, -1, false}, {PSK, 513, false},
		{Authkey, 4096, true}, {Authkey, 256, true}, {Authkey, 32, true}, {Authkey, 31, false}, {Authkey, 65537, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s-%d", tc.kind, tc.n), func(t *testing.T) {
			k, err := Generate(tc.kind, tc.n)
			if !tc.ok {
				if !errors.Is(err, ErrSize) {
					t.Fatalf("Generate = %v, want ErrSize", err)
				}
				return
			}
			if err != nil || len(k) != tc.n {
				t.Fatalf("Generate = %d bytes, %v", len(k), err)
			}
		})
	}
}

func TestGenerateIsRandom(t *testing.T) {
	a, _ := Generate(PSK, 32)
	b, _ := Generate(PSK, 32)
	if a.Equal(b) {
		t.Fatal("two generated keys are equal")
	}
}

func TestSecretNeverFormats(t *testing.T) {
	k, _ := Generate(PSK, 32)
	h := hex.EncodeToString(k)
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "key", k)
	outs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %X %q", k, k, k, k, k, k, k),
		fmt.Sprintf("%v", struct{ K Secret }{k}), fmt.Errorf("wrap: %v", k).Error(), logged.String(),
	}
	for _, o := range outs {
		if strings.Contains(o, h) || strings.Contains(o, string(k)) || !strings.Contains(o, "[redacted]") {
			t.Errorf("formatted secret: %q", o)
		}
	}
	if _, err := json.Marshal(struct{ K Secret }{k}); err == nil {
		t.Error("json.Marshal of a Secret succeeded")
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256 of "abc", as OpenSSH would print it.
	if got := Fingerprint([]byte("abc")); got != "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0" {
		t.Errorf("Fingerprint = %s", got)
	}
}
