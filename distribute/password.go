package distribute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
	"github.com/pcmkeys/pcmkeys/distribute/internal/remote"
	"github.com/pcmkeys/pcmkeys/policies"
)

// passwordSetter is a host that can set a local account's password.
//
// The password reaches chpasswd on its standard input ("user:password"),
// never in a command line or the environment, so no process listing or
// /proc/PID/environ on the host shows it; chpasswd hashes it with the
// host's own method (yescrypt on Debian 12) into /etc/shadow.
type passwordSetter interface {
	SetPassword(ctx context.Context, user string, password []byte) error
}

// SetPassword sets user's password on h. A host under a root prefix is an
// image with no running system: it fails with [ErrNoExec]. A [SetPass]
// job does the same in a batch.
func SetPassword(ctx context.Context, h Host, user string, password []byte) error {
	if err := checkPassword(h.Name(), user, password); err != nil {
		return err
	}
	ps, ok := h.(passwordSetter)
	if !ok {
		return fmt.Errorf("host %s: setting a password is not supported on this transport", h.Name())
	}
	return ps.SetPassword(ctx, user, password)
}

// errBadPassword is a password chpasswd's input line cannot carry.
var errBadPassword = errors.New("a password must be non-empty, without ':', newlines or NUL")

// checkPassword is what a password and its user must be, on every
// transport, before anything is sent. Its errors never hold the password.
func checkPassword(host, user string, password []byte) error {
	if err := policies.ValidateUser(user); err != nil {
		return fmt.Errorf("host %s: set a password: %w", host, err)
	}
	if len(password) == 0 || bytes.ContainsAny(password, ":\n\r\x00") {
		return fmt.Errorf("host %s: set the password of %s: %w", host, user, errBadPassword)
	}
	return nil
}

// chpasswdInput is chpasswd's input line. It is key material.
func chpasswdInput(user string, password []byte) []byte {
	line := make([]byte, 0, len(user)+len(password)+2)
	line = append(line, user...)
	line = append(line, ':')
	line = append(line, password...)
	return append(line, '\n')
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// secretReader reads key material to a session's stdin, and wipes it when
// done: a copier still reading (a session given up on a timeout) finds
// nothing from then on, and never reads it as it is wiped.
type secretReader struct {
	mu  sync.Mutex
	b   []byte
	off int
}

func (r *secretReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// WriteTo sends the bytes to w through a small buffer of its own, wiped
// after each write: io.Copy would otherwise copy them through a 32 KB
// buffer per session that nobody wipes (and at a thousand sessions at
// once, 32 MB).
func (r *secretReader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, copyChunk)
	defer wipe(buf)
	var sent int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			wipe(buf[:n])
			sent += int64(m)
			if werr != nil {
				return sent, werr
			}
		}
		if err == io.EOF {
			return sent, nil
		}
	}
}

// wipe clears the bytes and ends the reader.
func (r *secretReader) wipe() {
	r.mu.Lock()
	defer r.mu.Unlock()
	wipe(r.b)
	r.b = nil
}

// chpasswdCommand runs chpasswd with a PATH that finds it on Debian and
// RHEL alike.
const chpasswdCommand = "PATH=/usr/sbin:/usr/bin:/sbin:/bin; exec chpasswd"

// SetPassword implements passwordSetter: one session running chpasswd,
// bounded like every operation.
func (h *SSHHost) SetPassword(ctx context.Context, user string, password []byte) error {
	if h.root != "" {
		return fmt.Errorf("host %s: %w", h.name, ErrNoExec)
	}
	c, err := h.conn()
	if err != nil {
		return fmt.Errorf("host %s: set the password of %s: %w", h.name, user, err)
	}
	in := &secretReader{b: chpasswdInput(user, password)}
	defer in.wipe()
	var out limitedBuffer
	out.max = maxOutput
	if err := h.session(ctx, c, h.timeout, "sh -c "+remote.Quote(chpasswdCommand), in, &out, &out); err != nil {
		return fmt.Errorf("host %s: set the password of %s with chpasswd: %w: %s", h.name, user, escape.Err(err), escape.String(strings.TrimSpace(out.String())))
	}
	return nil
}

// SetPassword implements passwordSetter.
func (l *Local) SetPassword(ctx context.Context, user string, password []byte) error {
	if l.w.root != "/" {
		return fmt.Errorf("host %s: %w", l.name, ErrNoExec)
	}
	in := chpasswdInput(user, password)
	defer wipe(in)
	cmd := exec.CommandContext(ctx, "sh", "-c", chpasswdCommand)
	cmd.Stdin = bytes.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("host %s: set the password of %s with chpasswd: %w: %s", l.name, user, err, escape.String(strings.TrimSpace(string(out))))
	}
	return nil
}
