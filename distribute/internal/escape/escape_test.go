package escape

import (
	"errors"
	"fmt"
	"testing"
)

// hostile is what a hostile host writes: an OSC window title, a green
// "all good", a carriage return, a CSI as one C1 byte and as a UTF-8 C1
// rune, a right-to-left override and a byte that is no UTF-8.
const hostile = "\x1b]0;pwned\x07\x1b[32mall good\x1b[0m\r\u009b2J\u202e\x9b"

func TestString(t *testing.T) {
	for _, tc := range []struct{ in, want, lines string }{
		{"plain text, spaces and a \\ stay", "plain text, spaces and a \\ stay", ""},
		{"été ✓ 日本", "été ✓ 日本", ""},
		{"a\nb\tc", `a\nb\tc`, "a\nb\tc"},
		{hostile, `\x1b]0;pwned\a\x1b[32mall good\x1b[0m\r\u009b2J\u202e\x9b`, ""},
		{"\x00\x7f\ufffd", `\x00\x7f` + "\ufffd", ""},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := String(String(tc.in)); got != tc.want {
			t.Errorf("escaping %q twice gave %q", tc.in, got)
		}
		if tc.lines != "" {
			if got := Lines(tc.in); got != tc.lines {
				t.Errorf("Lines(%q) = %q, want %q", tc.in, got, tc.lines)
			}
		}
	}
}

// TestErrUnwraps: an escaped error shows escaped text and is still what
// it wraps.
func TestErrUnwraps(t *testing.T) {
	sentinel := errors.New("timed out")
	err := Err(fmt.Errorf("ssh: disconnect, reason 2: %s: %w", hostile, sentinel))
	if !errors.Is(err, sentinel) || err.Error() != String(err.Error()) || err.Error() == String("") {
		t.Errorf("escaped error %q", err)
	}
	if Err(nil) != nil {
		t.Error("Err(nil) is not nil")
	}
}
