package distribute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
	"github.com/pcmkeys/pcmkeys/distribute/internal/remote"
)

// cleanupTimeout bounds the removal of a temporary file after the run that
// made it was cancelled or timed out (see cleanupBound).
const cleanupTimeout = 30 * time.Second

// closeGrace is how long a session closed on expiry or cancellation may
// take to end before the whole connection is closed. sshd keeps a session
// open while its command lives, so a hung or stopped command never ends
// the session itself.
const closeGrace = 1500 * time.Millisecond

// maxOutput bounds what is read back from a remote command.
const maxOutput = 64 << 10

// remoteError is the script's refusal or failure.
type remoteError struct {
	code int
	msg  string
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Unwrap() error {
	switch e.code {
	case remote.ExitUnsafe:
		return ErrUnsafe
	case remote.ExitNoUser:
		return ErrUnknownUser
	case remote.ExitNoGroup:
		return ErrUnknownGroup
	case remote.ExitVerify:
		return ErrVerify
	}
	return nil
}

// notStarted is a failure before the remote command could start: there is
// nothing on the host to clean up.
type notStarted struct{ err error }

func (e *notStarted) Error() string { return e.err.Error() }
func (e *notStarted) Unwrap() error { return e.err }

// mayHaveRun reports whether a failed command may have done something on
// the host.
func mayHaveRun(err error) bool {
	var ns *notStarted
	return !errors.As(err, &ns)
}

// conn returns the host's connection, or at once the reason it was given
// up.
func (h *SSHHost) conn() (*ssh.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, fmt.Errorf("%w: connection to %s already closed", ErrUnreachable, h.name)
	case h.broken != nil:
		return nil, h.broken
	}
	return h.client, nil
}

// giveUp closes c, a connection a session did not end on, and records
// why, so that no later operation waits on it.
func (h *SSHHost) giveUp(c *ssh.Client, why error) {
	h.mu.Lock()
	switch c {
	case h.client:
		if h.broken == nil {
			h.broken = why
		}
	case h.spare:
		if h.spareErr == nil {
			h.spareErr = why
		}
	}
	h.mu.Unlock()
	c.Close()
}

// run executes the script with args, content on stdin, on the host's
// connection, bounded by ctx and the command timeout.
func (h *SSHHost) run(ctx context.Context, content []byte, args ...string) (string, error) {
	c, err := h.conn()
	if err != nil {
		return "", &notStarted{err}
	}
	return h.runOn(ctx, c, h.timeout, content, args...)
}

// runOn executes the script on c, bounded by ctx and timeout (0: ctx
// only), and returns stdout. The command line holds only the script and
// the (quoted) arguments; content goes to stdin.
func (h *SSHHost) runOn(ctx context.Context, c *ssh.Client, timeout time.Duration, content []byte, args ...string) (string, error) {
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxOutput, maxOutput
	if len(args) > 0 && args[0] == "read" {
		stdout.max = maxReadBack + 1
	}
	err := h.session(ctx, c, timeout, remote.Command(args...), remote.Input(bytes.NewReader(content)), &stdout, &stderr)
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return stdout.String(), nil
	case errors.As(err, &ee):
		msg := escape.String(strings.TrimSpace(stderr.String()))
		if msg == "" {
			msg = fmt.Sprintf("remote command exited %d", ee.ExitStatus())
		}
		if h.sudo && strings.Contains(msg, "sudo:") {
			msg = "sudo failed (passwordless sudo is required): " + msg
		}
		return stdout.String(), &remoteError{code: ee.ExitStatus(), msg: msg}
	case errors.Is(err, ErrUnreachable), ctx.Err() != nil:
		return "", err
	}
	return "", fmt.Errorf("%w: %s", ErrUnreachable, escape.String(err.Error()))
}

// session runs one command on c — with sudo -n when logging in as a sudo
// user, exec'd by the login shell — bounded by ctx and timeout (0: ctx
// only), whatever the remote side does. Opening the session, starting the command and waiting for it
// all happen in a goroutine; on expiry or cancellation the session is
// closed, and if it has not ended within closeGrace the connection is
// closed too (which ends every session on it) and given up. The result is
// then ctx.Err() if the caller's ctx ended, else an error wrapping
// ErrTimeout.
func (h *SSHHost) session(ctx context.Context, c *ssh.Client, timeout time.Duration, command string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return &notStarted{err}
	}
	opctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		opctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if h.sudo {
		command = "sudo -n -- " + command
	}
	// The login shell becomes the command: one process fewer per session.
	command = "exec " + command
	started := make(chan *ssh.Session, 1)
	done := make(chan error, 1)
	h.sessions.Add(1)
	go func() {
		sess, err := c.NewSession()
		if err != nil {
			started <- nil
			done <- &notStarted{fmt.Errorf("%w: %s", ErrUnreachable, escape.String(err.Error()))}
			return
		}
		defer sess.Close()
		started <- sess
		sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
		if err := sess.Start(command); err != nil {
			done <- fmt.Errorf("start remote command: %w", escape.Err(err))
			return
		}
		done <- sess.Wait()
	}()
	select {
	case err := <-done:
		return err
	case <-opctx.Done():
	}
	select {
	case err := <-done: // it ended just as time ran out
		return err
	default:
	}
	select {
	case sess := <-started:
		if sess != nil {
			sess.Close()
		}
	default: // the server has not even opened the session
	}
	timer := time.NewTimer(closeGrace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		why := fmt.Errorf("%w: the connection to %s was closed after a command got no answer within %s; later operations on it are refused", ErrTimeout, h.name, timeout)
		if ctx.Err() != nil {
			why = fmt.Errorf("%w: the connection to %s was closed after a cancelled command did not end; later operations on it are refused", ErrUnreachable, h.name)
		}
		h.giveUp(c, why)
		timer.Reset(closeGrace)
		select { // closing the connection ends the session at once
		case <-done:
		case <-timer.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: no answer within %s", ErrTimeout, timeout)
}

// minCleanup is the least time a cleanup is given, however short the
// command timeout.
const minCleanup = 5 * time.Second

// cleanupBound is how long removing a temporary file may take: the
// command timeout, between minCleanup and cleanupTimeout.
func (h *SSHHost) cleanupBound() time.Duration {
	switch {
	case h.timeout <= 0 || h.timeout > cleanupTimeout:
		return cleanupTimeout
	case h.timeout < minCleanup:
		return minCleanup
	}
	return h.timeout
}

// cleanup runs "abort" with args (the removal of a temporary file) even
// after ctx has ended, within cleanupBound (plus the close grace): over
// the host's connection while it is sound, else — or if it fails or hangs
// there — over a fresh connection. Over a fresh connection the script
// first kills what is left of the command that made the file ("reap"),
// so a stopped or hung command cannot write it again once it resumes.
func (h *SSHHost) cleanup(ctx context.Context, args ...string) error {
	var err error
	dialErr := h.cleanupOver(ctx, func(base context.Context, c *ssh.Client, bound time.Duration) bool {
		_, err = h.runOn(base, c, bound, nil, append([]string{"abort"}, args...)...)
		return err == nil || !errors.Is(err, ErrUnreachable)
	}, func(base context.Context, c *ssh.Client, bound time.Duration) {
		if _, err = h.runOn(base, c, bound, nil, append([]string{"reap"}, args...)...); err != nil {
			err = fmt.Errorf("cleanup over a new connection: %w", err)
		}
	})
	if dialErr != nil {
		return fmt.Errorf("cleanup over a new connection: %w", dialErr)
	}
	return err
}

// cleanupOver is the way of every cleanup, even after ctx has ended,
// within cleanupBound: own runs over the host's connection while it is
// sound, with half the bound, and says whether that settled it; if not,
// spare runs over a fresh connection with what is left of the bound (at
// least a second). It returns the error of dialling that connection.
func (h *SSHHost) cleanupOver(ctx context.Context, own func(ctx context.Context, c *ssh.Client, bound time.Duration) (settled bool), spare func(ctx context.Context, c *ssh.Client, bound time.Duration)) error {
	base := context.WithoutCancel(ctx)
	bound := h.cleanupBound()
	deadline := time.Now().Add(bound)
	if c, err := h.conn(); err == nil && own(base, c, bound/2) {
		return nil
	}
	left := time.Until(deadline)
	if left < time.Second {
		left = time.Second
	}
	dctx, cancel := context.WithTimeout(base, left)
	defer cancel()
	c, err := h.spareConn(dctx)
	if err != nil {
		return err
	}
	spare(base, c, time.Until(deadline))
	return nil
}

// spareConn returns the connection cleanups use once the host's own is
// broken, dialling it the first time. If that dial or a cleanup on it
// failed, later cleanups fail at once: each is bounded, but a host that
// hangs should not cost a bound per file.
func (h *SSHHost) spareConn(ctx context.Context) (*ssh.Client, error) {
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: connection to %s already closed", ErrUnreachable, h.name)
	case h.spareErr != nil:
		err := h.spareErr
		h.mu.Unlock()
		return nil, err
	case h.spare != nil:
		c := h.spare
		h.mu.Unlock()
		return c, nil
	case h.dialer == nil:
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: %s cannot be reconnected", ErrUnreachable, h.name)
	}
	h.mu.Unlock()
	c, err := h.dialer.dial(ctx, h.ep)
	if err == nil && ctx.Err() != nil {
		c.Close()
		err = fmt.Errorf("%w: no new connection within the cleanup's bound", ErrTimeout)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err != nil:
		if h.spareErr == nil {
			h.spareErr = err
		}
		return nil, err
	case h.closed:
		c.Close()
		return nil, fmt.Errorf("%w: connection to %s already closed", ErrUnreachable, h.name)
	case h.spare != nil: // another cleanup dialled meanwhile
		c.Close()
		return h.spare, nil
	}
	h.spare = c
	return c, nil
}

// limitedBuffer keeps at most max bytes. It is safe for the session's
// stdout and stderr copiers to write to one buffer at once.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

// copyChunk is the buffer a session's stdin, stdout and stderr are
// copied through.
const copyChunk = 4 << 10

// ReadFrom reads r to its end through a small buffer: io.Copy, which the
// SSH session uses for stdout and stderr, would allocate 32 KB for each.
func (b *limitedBuffer) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, copyChunk)
	var read int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			b.Write(buf[:n])
			read += int64(n)
		}
		if err == io.EOF {
			return read, nil
		}
		if err != nil {
			return read, err
		}
	}
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *limitedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
