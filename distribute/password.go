package distribute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

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
// image with no running system: it fails with [ErrNoExec].
func SetPassword(ctx context.Context, h Host, user string, password []byte) error {
	if err := policies.ValidateUser(user); err != nil {
		return err
	}
	if len(password) == 0 || bytes.ContainsAny(password, ":\n\r\x00") {
		return errors.New("set password: a password must be non-empty, without ':', newlines or NUL")
	}
	ps, ok := h.(passwordSetter)
	if !ok {
		return fmt.Errorf("host %s: setting a password is not supported on this transport", h.Name())
	}
	return ps.SetPassword(ctx, user, password)
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
	in := chpasswdInput(user, password)
	defer wipe(in)
	var out limitedBuffer
	out.max = maxOutput
	if err := h.session(ctx, c, h.timeout, "sh -c "+remote.Quote(chpasswdCommand), bytes.NewReader(in), &out, &out); err != nil {
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
