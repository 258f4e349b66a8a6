package distribute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// hostile is what a hostile host writes: an OSC window title, a green
// "all good", a carriage return, a CSI as one C1 byte and as a UTF-8 C1
// rune, a right-to-left override and a byte that is no UTF-8.
const hostile = "\x1b]0;pwned\x07\x1b[32mall good\x1b[0m\r\u009b2J\u202e\x9b"

// hostilePrintf is hostile as printf(1) writes it.
const hostilePrintf = `\033]0;pwned\007\033[32mall good\033[0m\r\302\2332J\342\200\256\233`

// hostileName is hostile as a user or group name (no space, ':' or ',').
const hostileName = "\x1b]0;pwned\x07\x1b[32mOK\x1b[0m\u009b\u202e"

// TestEscapedErrorUnwraps: a host's error, escaped, is still a timeout
// and so an unreachable host.
func TestEscapedErrorUnwraps(t *testing.T) {
	err := escape.Err(fmt.Errorf("ssh: disconnect, reason 2: %s: %w", hostile, ErrTimeout))
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrUnreachable) {
		t.Errorf("escaped error %q", err)
	}
	shownSafely(t, "escaped error", err.Error(), false)
}

// shownSafely fails the test if s, shown as text or as a JSON string
// (read raw, or decoded by whoever reads it), holds anything a terminal
// would act on; lines allows newlines and tabs (a command's output).
func shownSafely(t *testing.T, what, s string, lines bool) {
	t.Helper()
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back string
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ how, s string }{{"", s}, {" in JSON", string(js)}, {" from JSON", back}} {
		if !utf8.ValidString(c.s) {
			t.Errorf("%s%s is not valid UTF-8: %q", what, c.how, c.s)
			return
		}
		for _, r := range c.s {
			if lines && (r == '\n' || r == '\t') {
				continue
			}
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u202e' || r == utf8.RuneError {
				t.Errorf("%s%s holds %U: %q", what, c.how, r, c.s)
				return
			}
		}
	}
}

// TestSSHHostileText: what a hostile host says — a command's stderr and
// output, the names in its account databases — reaches no error or
// FileState raw.
func TestSSHHostileText(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	ctx := context.Background()
	onLab(t, host, `set -e
printf '%s:x:3000:3000::/home/evil:/bin/sh\nevil2:x:3001:3001::/home/%s:/bin/sh\n' "$1" "$2" >> /etc/passwd
printf '%s:x:3000:\n' "$1" >> /etc/group
printf planted > /etc/pacemaker/authkey; chown 3000:3000 /etc/pacemaker/authkey; chmod 600 /etc/pacemaker/authkey`, hostileName, hostileName)
	st, err := h.Inspect(ctx, "/etc/pacemaker/authkey", "hacluster")
	if err != nil || st.UID != 3000 || !strings.Contains(st.Owner, `\x1b[32mOK`) {
		t.Errorf("inspect: owner %q, uid %d, %v; want the hostile owner, escaped", st.Owner, st.UID, err)
	}
	js, _ := json.Marshal(st)
	shownSafely(t, "inspect's owner", st.Owner, false)
	shownSafely(t, "inspect's group", st.Group, false)
	shownSafely(t, "inspect's FileState in JSON", string(js), false)
	// A home directory named with escapes is refused, and said safely.
	if _, err := h.LookupUser(ctx, "evil2"); err == nil {
		t.Error("a home directory with control characters was accepted")
	} else {
		shownSafely(t, "lookup error", err.Error(), false)
	}
	if _, err := h.Inspect(ctx, "~/k", "evil2"); err != nil {
		shownSafely(t, "inspect error in that home", err.Error(), false)
	}
	// A program of the host's that writes escapes on stderr and fails.
	onLab(t, host, `set -e
cat > /home/sha256sum.hostile <<'EOF'
#!/bin/sh
printf '`+hostilePrintf+`\n' >&2
exit 1
EOF
chmod 755 /home/sha256sum.hostile
mount --bind /home/sha256sum.hostile /usr/bin/sha256sum`)
	onLab(t, host, "rm /etc/pacemaker/authkey")
	for _, f := range []File{authkeyFile("key"), {Path: "~/.pcmkeys/k", Content: []byte("00"), Owner: "alice", Mode: 0o600}} {
		err := Write(ctx, h, f)
		if err == nil || !strings.Contains(err.Error(), `\x1b[32mall good`) {
			t.Errorf("write %s with a hostile sha256sum: %v; want its stderr, escaped", f.Path, err)
			continue
		}
		shownSafely(t, "write error", err.Error(), false)
	}
	// A command's output and error output.
	out, err := h.Exec(ctx, `printf '`+hostilePrintf+`\nsecond line\n'; printf '`+hostilePrintf+`\n' >&2; exit 3`)
	if err == nil || !strings.Contains(out, "\nsecond line\n") || !strings.Contains(out, `\x1b[32mall good`) {
		t.Errorf("exec = %q, %v; want its output escaped, lines kept", out, err)
	}
	shownSafely(t, "exec output", out, true)
	shownSafely(t, "exec error", err.Error(), false)
}

// TestLocalHostileNames: names from an image's account databases are
// escaped as over SSH.
func TestLocalHostileNames(t *testing.T) {
	requireRoot(t)
	l := newLab(t)
	f, err := os.OpenFile(l.path("etc/passwd"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(hostileName + ":x:3000:3000::/home/evil:/bin/sh\nevil2:x:3001:3001::/home/" + hostileName + ":/bin/sh\n")
	f.Close()
	l.WriteFile(t, "etc/pacemaker/authkey", []byte("planted"), 3000, 3000, 0o600)
	h := l.host(t)
	st, err := h.Inspect(context.Background(), "/etc/pacemaker/authkey", "hacluster")
	if err != nil || !strings.Contains(st.Owner, `\x1b[32mOK`) {
		t.Errorf("inspect: owner %q, uid %d, %v; want the hostile owner, escaped", st.Owner, st.UID, err)
	}
	shownSafely(t, "inspect's owner", st.Owner, false)
	if _, err := h.LookupUser(context.Background(), "evil2"); err == nil {
		t.Error("a home directory with control characters was accepted")
	} else {
		shownSafely(t, "lookup error", err.Error(), false)
	}
}
