package distribute

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pcmkeys/pcmkeys/policies"
)

//go:embed ssh_script.sh
var remoteScript string

// SSHDialer opens SSH hosts; it holds what all connections of one run
// share (keys, known_hosts). Close it when the run is over.
type SSHDialer struct {
	d *sshDialer
}

// NewSSHDialer prepares connections with cfg.
func NewSSHDialer(cfg SSHConfig) (*SSHDialer, error) {
	d, err := newSSHDialer(cfg)
	if err != nil {
		return nil, err
	}
	return &SSHDialer{d: d}, nil
}

// Close releases the agent connection.
func (s *SSHDialer) Close() { s.d.close() }

// Open connects to a host. root is a prefix on that host for all its paths.
func (s *SSHDialer) Open(ctx context.Context, name string, ep SSHEndpoint, root string) (*SSHHost, error) {
	ep.Name = name
	c, err := s.d.dial(ctx, ep)
	if err != nil {
		return nil, err
	}
	return &SSHHost{name: name, client: c, sudo: s.d.cfg.Sudo, root: root, timeout: s.d.cfg.CommandTimeout}, nil
}

// SSHHost is a host reached over one SSH connection, reused for every
// operation on it. Each operation is one session running the remote
// script with sh; key material goes to its stdin.
type SSHHost struct {
	name    string
	client  *ssh.Client
	sudo    bool
	root    string
	timeout time.Duration
}

var _ Host = (*SSHHost)(nil)

// Name implements Host.
func (h *SSHHost) Name() string { return h.name }

// Close implements Host.
func (h *SSHHost) Close() error { return h.client.Close() }

// shellQuote single-quotes s for the remote shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// remoteError is the script's refusal or failure.
type remoteError struct {
	code int
	msg  string
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Unwrap() error {
	switch e.code {
	case 10:
		return ErrUnsafe
	case 11:
		return ErrUnknownUser
	case 12:
		return ErrUnknownGroup
	case 13:
		return ErrVerify
	}
	return nil
}

// cleanupTimeout bounds the removal of a temporary file after the run that
// made it was cancelled or timed out.
const cleanupTimeout = 30 * time.Second

// maxOutput bounds what is read back from a remote command.
const maxOutput = 64 << 10

// run executes the script with args, content on stdin, and returns stdout.
// The command line holds only the script and the (quoted) arguments.
func (h *SSHHost) run(ctx context.Context, content []byte, args ...string) (string, error) {
	return h.runWithin(ctx, h.timeout, content, args...)
}

// runWithin is run with its own bound on the operation (0: none).
func (h *SSHHost) runWithin(ctx context.Context, timeout time.Duration, content []byte, args ...string) (string, error) {
	var cmd strings.Builder
	cmd.WriteString("sh -c " + shellQuote(remoteScript) + " pcmkeys")
	for _, a := range args {
		cmd.WriteString(" " + shellQuote(a))
	}
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxOutput, maxOutput
	if len(args) > 0 && args[0] == "read" {
		stdout.max = maxReadBack + 1
	}
	err := h.session(ctx, timeout, cmd.String(), bytes.NewReader(content), &stdout, &stderr)
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return stdout.String(), nil
	case errors.As(err, &ee):
		msg := strings.TrimSpace(stderr.String())
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
	return "", fmt.Errorf("%w: %v", ErrUnreachable, err)
}

// session runs one command on the connection — with sudo -n when logging
// in as a sudo user — bounded by ctx and timeout (0: ctx only). On either
// the remote command is sent SIGTERM and the session closed.
func (h *SSHHost) session(ctx context.Context, timeout time.Duration, command string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	sess, err := h.client.NewSession()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer sess.Close()
	if h.sudo {
		command = "sudo -n -- " + command
	}
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if err := sess.Start(command); err != nil {
		return fmt.Errorf("start remote command: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sess.Signal(ssh.SIGTERM)
		sess.Close()
		<-done
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: no answer within %s", ErrUnreachable, timeout)
		}
		return ctx.Err()
	}
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

func (h *SSHHost) fail(op, path string, err error) error {
	return &PathError{Host: h.name, Op: op, Path: path, Err: err}
}

// checkPath validates a path before it is sent.
func checkPath(p string) error {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return policies.CheckAbsPath("/" + rest)
	}
	return policies.CheckAbsPath(p)
}

// tempSuffix names a temporary file: 16 random hex digits.
func tempSuffix() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func modeArg(m fs.FileMode) string { return strconv.FormatUint(uint64(m.Perm()), 8) }

// LookupUser implements Host.
func (h *SSHHost) LookupUser(ctx context.Context, name string) (Account, error) {
	if err := policies.ValidateUser(name); err != nil {
		return Account{}, err
	}
	out, err := h.run(ctx, nil, "user", h.root, "/", name, "", "600", "")
	if err != nil {
		return Account{}, fmt.Errorf("on %s: %w", h.name, err)
	}
	f := strings.SplitN(strings.TrimSpace(out), ":", 3)
	if len(f) != 3 {
		return Account{}, fmt.Errorf("on %s: unexpected answer to a user lookup", h.name)
	}
	uid, err1 := strconv.Atoi(f[0])
	gid, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return Account{}, fmt.Errorf("on %s: unexpected answer to a user lookup", h.name)
	}
	return Account{Name: name, UID: uid, GID: gid, Home: f[2]}, nil
}

func (h *SSHHost) checkFile(f File) error {
	if err := checkPath(f.Path); err != nil {
		return err
	}
	if err := policies.CheckMode(f.Mode); err != nil {
		return err
	}
	if err := policies.ValidateUser(f.Owner); err != nil {
		return err
	}
	if f.Group != "" {
		return policies.ValidateUser(f.Group)
	}
	return nil
}

// Stage implements Host.
func (h *SSHHost) Stage(ctx context.Context, f File) (Staged, error) {
	if err := h.checkFile(f); err != nil {
		return nil, h.fail("stage", f.Path, err)
	}
	out, err := h.run(ctx, f.Content, "stage", h.root, f.Path, f.Owner, f.Group, modeArg(f.Mode), f.SHA256(), tempSuffix())
	if err != nil {
		return nil, h.fail("stage", f.Path, err)
	}
	tmp := strings.TrimSpace(out)
	if tmp == "" || strings.ContainsAny(tmp, "\n\x00") {
		return nil, h.fail("stage", f.Path, errors.New("the remote side did not name its temporary file"))
	}
	return &sshStaged{h: h, f: f, tmp: tmp}, nil
}

// WriteFile stages and commits in one session: the fast path for a file
// that does not wait for other hosts.
func (h *SSHHost) WriteFile(ctx context.Context, f File) error {
	if err := h.checkFile(f); err != nil {
		return h.fail("write", f.Path, err)
	}
	suffix := tempSuffix()
	if _, err := h.run(ctx, f.Content, "write", h.root, f.Path, f.Owner, f.Group, modeArg(f.Mode), f.SHA256(), suffix); err != nil {
		var re *remoteError
		if !errors.As(err, &re) {
			// Interrupted or timed out: the remote script may have died
			// between writing its temporary file and renaming it.
			if aerr := h.abortSuffix(ctx, f, suffix); aerr != nil {
				err = errors.Join(err, aerr)
			}
		}
		return h.fail("write", f.Path, err)
	}
	return nil
}

// abortSuffix removes the temporary file a write with suffix may have left,
// even after ctx has ended, within a bounded time of its own.
func (h *SSHHost) abortSuffix(ctx context.Context, f File, suffix string) error {
	_, err := h.runWithin(context.WithoutCancel(ctx), cleanupTimeout, nil, "abort", h.root, f.Path, f.Owner, f.Group, modeArg(f.Mode), "", suffix)
	return err
}

type sshStaged struct {
	h    *SSHHost
	f    File
	tmp  string
	done bool
}

// Commit implements Staged.
func (s *sshStaged) Commit(ctx context.Context) error {
	if s.done {
		return errors.New("staged file already committed or aborted")
	}
	_, err := s.h.run(ctx, nil, "commit", s.h.root, s.f.Path, s.f.Owner, s.f.Group, modeArg(s.f.Mode), s.f.SHA256(), s.tmp)
	if err != nil {
		return s.h.fail("commit", s.f.Path, err)
	}
	s.done = true
	return nil
}

// Abort implements Staged. It uses a fresh context so that a cancelled
// run still cleans up what it staged.
func (s *sshStaged) Abort(ctx context.Context) error {
	if s.done {
		return nil
	}
	s.done = true
	_, err := s.h.runWithin(context.WithoutCancel(ctx), cleanupTimeout, nil, "abort", s.h.root, s.f.Path, s.f.Owner, s.f.Group, modeArg(s.f.Mode), "", s.tmp)
	if err != nil {
		return s.h.fail("abort", s.f.Path, err)
	}
	return nil
}

// Remove implements Host.
func (h *SSHHost) Remove(ctx context.Context, path, owner string) error {
	if err := checkPath(path); err != nil {
		return h.fail("remove", path, err)
	}
	if _, err := h.run(ctx, nil, "remove", h.root, path, owner, "", "600", ""); err != nil {
		return h.fail("remove", path, err)
	}
	return nil
}

// Inspect implements Host.
func (h *SSHHost) Inspect(ctx context.Context, path, owner string) (FileState, error) {
	st := FileState{Path: path}
	if err := checkPath(path); err != nil {
		return st, h.fail("inspect", path, err)
	}
	out, err := h.run(ctx, nil, "inspect", h.root, path, owner, "", "600", "")
	if err != nil {
		return st, h.fail("inspect", path, err)
	}
	f := strings.Fields(out)
	switch {
	case len(f) == 1 && f[0] == "missing":
	case len(f) == 1 && f[0] == "symlink":
		st.Exists, st.Symlink = true, true
	case len(f) == 2 && f[0] == "other":
		st.Exists = true
	case len(f) == 8 && f[0] == "file":
		st.Exists, st.Regular = true, true
		st.UID, _ = strconv.Atoi(f[1])
		st.GID, _ = strconv.Atoi(f[2])
		m, _ := strconv.ParseUint(f[3], 8, 32)
		st.Mode = fs.FileMode(m & 0o777)
		st.Size, _ = strconv.ParseInt(f[4], 10, 64)
		st.Owner, st.Group, st.SHA256 = f[5], f[6], f[7]
	default:
		return st, h.fail("inspect", path, errors.New("unexpected answer from the remote side"))
	}
	return st, nil
}

// Exec implements Host: the command runs through the remote shell, with
// sudo -n when logging in as a sudo user.
func (h *SSHHost) Exec(ctx context.Context, command string) (string, error) {
	var out limitedBuffer
	out.max = maxOutput
	if err := h.session(ctx, h.timeout, "sh -c "+shellQuote(command), nil, &out, &out); err != nil {
		return out.String(), fmt.Errorf("host %s: %s: %w", h.name, command, err)
	}
	return out.String(), nil
}

// Read implements Host.
func (h *SSHHost) Read(ctx context.Context, path, owner string) ([]byte, error) {
	if err := checkPath(path); err != nil {
		return nil, h.fail("read", path, err)
	}
	out, err := h.run(ctx, nil, "read", h.root, path, owner, "", "600", "")
	if err != nil {
		return nil, h.fail("read", path, err)
	}
	if len(out) > maxReadBack {
		return nil, h.fail("read", path, fmt.Errorf("larger than %d bytes", maxReadBack))
	}
	return []byte(out), nil
}

// Sweep implements Host.
func (h *SSHHost) Sweep(ctx context.Context, path, owner string) (int, error) {
	if err := checkPath(path); err != nil {
		return 0, h.fail("sweep", path, err)
	}
	out, err := h.run(ctx, nil, "sweep", h.root, path, owner, "", "600", "")
	if err != nil {
		return 0, h.fail("sweep", path, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, h.fail("sweep", path, errors.New("unexpected answer from the remote side"))
	}
	return n, nil
}
