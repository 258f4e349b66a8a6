package distribute

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
	"github.com/pcmkeys/pcmkeys/distribute/internal/remote"
	"github.com/pcmkeys/pcmkeys/policies"
)

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
	return &SSHHost{name: name, client: c, sudo: s.d.cfg.Sudo, root: root, timeout: s.d.cfg.CommandTimeout, dialer: s.d, ep: ep}, nil
}

// SSHHost is a host reached over one SSH connection, reused for every
// operation on it. Each operation is one session running the remote
// script with sh; key material goes to its stdin.
//
// Every operation ends within the command timeout (plus a grace of about
// a second and a half) or when ctx ends, whatever the remote side does.
// A command that does not end when its session is closed (stopped, hung
// in the kernel, or a dead sshd) costs the connection: it is closed, the
// operation fails with [ErrTimeout] (or ctx.Err()), and every later
// operation on the host fails at once with an error wrapping ErrTimeout.
// Only cleanups (Staged.Abort, and a failed one-step write removing its
// temporary file) go on, over a fresh connection of their own.
type SSHHost struct {
	name    string
	sudo    bool
	root    string
	timeout time.Duration
	dialer  *sshDialer
	ep      SSHEndpoint

	// sessions counts the sessions opened on the host (for tests: how
	// many round trips an operation costs).
	sessions atomic.Int64

	mu       sync.Mutex
	client   *ssh.Client
	broken   error       // why client was given up
	spare    *ssh.Client // the cleanups' connection once client is broken
	spareErr error       // why spare could not be had or was given up
	closed   bool
}

var _ Host = (*SSHHost)(nil)

// Name implements Host.
func (h *SSHHost) Name() string { return h.name }

// Close implements Host. Closing a host whose connection was given up is
// not an error.
func (h *SSHHost) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	if h.spare != nil {
		h.spare.Close()
	}
	if h.broken != nil {
		return nil
	}
	return h.client.Close()
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
	a := Account{Name: name, UID: uid, GID: gid, Home: f[2]}
	if err := checkHome(a); err != nil {
		return Account{}, fmt.Errorf("on %s: %w", h.name, err)
	}
	return a, nil
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
	suffix := tempSuffix()
	out, err := h.run(ctx, f.Content, "stage", h.root, f.Path, f.Owner, f.Group, modeArg(f.Mode), f.SHA256(), suffix)
	if err != nil {
		var re *remoteError
		if !errors.As(err, &re) && mayHaveRun(err) {
			// Interrupted or timed out: the temporary file may exist,
			// and no caller can abort what it was not given.
			if aerr := h.abortSuffix(ctx, f, suffix); aerr != nil {
				err = errors.Join(err, aerr)
			}
		}
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
		if !errors.As(err, &re) && mayHaveRun(err) {
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
// even after ctx has ended, within a bounded time of its own (see
// [SSHHost.cleanup]).
func (h *SSHHost) abortSuffix(ctx context.Context, f File, suffix string) error {
	return h.cleanup(ctx, h.root, f.Path, f.Owner, f.Group, modeArg(f.Mode), "", suffix)
}

type sshStaged struct {
	h   *SSHHost
	f   File
	tmp string
	// account is the owner's UID:GID:HOME as the stage found it (staged in
	// a batch), for the commit to use without looking it up again.
	account string
	done    bool
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

// Abort implements Staged. It goes on after ctx has ended, so that a
// cancelled run still cleans up what it staged, and over a fresh
// connection if the host's own was given up; it is bounded all the same
// (see [SSHHost.cleanup]).
func (s *sshStaged) Abort(ctx context.Context) error {
	if s.done {
		return nil
	}
	s.done = true
	err := s.h.cleanup(ctx, s.h.root, s.f.Path, s.f.Owner, s.f.Group, modeArg(s.f.Mode), "", s.tmp)
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

// Inspect implements Host. It reports what Local.Inspect reports: the
// path with "~" expanded, and for a link or any other kind of file its
// owner, mode (setuid, setgid and sticky bits included) and size. A
// regular file is hashed only if it is no larger than maxReadBack, and at
// most that much of it is read.
func (h *SSHHost) Inspect(ctx context.Context, path, owner string) (FileState, error) {
	st := FileState{Path: path}
	if err := checkPath(path); err != nil {
		return st, h.fail("inspect", path, err)
	}
	out, err := h.run(ctx, nil, "inspect", h.root, path, owner, "", "600", "")
	if err != nil {
		return st, h.fail("inspect", path, err)
	}
	if err := parseInspect(out, &st); err != nil {
		return FileState{Path: path}, h.fail("inspect", path, err)
	}
	return st, nil
}

// parseInspect reads the script's answer: the full path on one line, then
// "missing", or "symlink|other|file UID GID MODE SIZE OWNER GROUP", with
// the SHA-256 (or "-" for none) after a file's.
func parseInspect(out string, st *FileState) error {
	bad := errors.New("unexpected answer from the remote side")
	full, rest, ok := strings.Cut(out, "\n")
	if !ok || !strings.HasPrefix(full, "/") {
		return bad
	}
	st.Path = escape.String(full)
	f := strings.Fields(rest)
	if len(f) == 1 && f[0] == "missing" {
		return nil
	}
	switch {
	case len(f) == 7 && (f[0] == "symlink" || f[0] == "other"):
		st.Symlink = f[0] == "symlink"
	case len(f) == 8 && f[0] == "file":
		st.Regular = true
	default:
		return bad
	}
	st.Exists = true
	uid, err1 := strconv.Atoi(f[1])
	gid, err2 := strconv.Atoi(f[2])
	m, err3 := strconv.ParseUint(f[3], 8, 32)
	size, err4 := strconv.ParseInt(f[4], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil || m > 0o7777 {
		return bad
	}
	st.UID, st.GID, st.Mode, st.Size = uid, gid, permOf(uint32(m)), size
	st.Owner, st.Group = escape.String(f[5]), escape.String(f[6])
	if st.Owner == "UNKNOWN" { // stat's word for an id without a name
		st.Owner = f[1]
	}
	if st.Group == "UNKNOWN" {
		st.Group = f[2]
	}
	if !st.Regular {
		return nil
	}
	st.TooLarge = size > maxReadBack
	if sum := f[7]; sum != "-" {
		if _, err := hex.DecodeString(sum); err != nil || len(sum) != 64 || st.TooLarge {
			return bad
		}
		st.SHA256 = sum
	}
	return nil
}

// Exec implements Host: the command runs through the remote shell, with
// sudo -n when logging in as a sudo user.
func (h *SSHHost) Exec(ctx context.Context, command string) (string, error) {
	c, err := h.conn()
	if err != nil {
		return "", fmt.Errorf("host %s: %s: %w", h.name, command, err)
	}
	var out limitedBuffer
	out.max = maxOutput
	if err := h.session(ctx, c, h.timeout, "sh -c "+remote.Quote(command), nil, &out, &out); err != nil {
		return escape.Lines(out.String()), fmt.Errorf("host %s: %s: %w", h.name, command, escape.Err(err))
	}
	return escape.Lines(out.String()), nil
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
