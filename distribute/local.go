package distribute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/distribute/internal/remote"
	"github.com/pcmkeys/pcmkeys/policies"
)

// maxReadBack bounds how much of a file is read to verify or inspect it,
// locally and over SSH (the remote script's max).
const maxReadBack = remote.MaxRead

// errTooLarge is a file larger than maxReadBack.
var errTooLarge = fmt.Errorf("file is larger than %d bytes", maxReadBack)

// Local is this machine, optionally under a root prefix.
type Local struct {
	name string
	w    walker
	acct accounts
}

// NewLocal returns the local host called name. root is a directory under
// which all its paths are written, or "" for the real root.
func NewLocal(name, root string) (*Local, error) {
	r := "/"
	if root != "" {
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, fmt.Errorf("host %s: root %s: %w", name, root, err)
		}
		r = abs
	}
	return &Local{name: name, w: walker{root: r, euid: os.Geteuid()}, acct: accounts{root: root}}, nil
}

// Name implements Host.
func (l *Local) Name() string { return l.name }

// Close implements Host.
func (l *Local) Close() error { return nil }

// LookupUser implements Host.
func (l *Local) LookupUser(ctx context.Context, name string) (Account, error) {
	if err := ctx.Err(); err != nil {
		return Account{}, err
	}
	if err := policies.ValidateUser(name); err != nil {
		return Account{}, err
	}
	a, err := l.acct.user(name)
	if err == nil {
		err = checkHome(a)
	}
	if err != nil {
		return Account{}, fmt.Errorf("on %s: %w", l.name, err)
	}
	return a, nil
}

func (l *Local) fail(op, path string, err error) error {
	return &PathError{Host: l.name, Op: op, Path: path, Err: err}
}

// resolve finds the owner, group and location of f.
func (l *Local) resolve(ctx context.Context, path, owner, group string) (target, error) {
	acct, err := l.LookupUser(ctx, owner)
	if err != nil {
		return target{}, err
	}
	t, err := resolvePath(path, acct)
	if err != nil {
		return t, err
	}
	if t.homeDepth > 0 {
		t.groups = l.acct.groupIDs(acct)
	}
	if group != "" {
		if err := policies.ValidateUser(group); err != nil {
			return t, err
		}
		if t.gid, err = l.acct.group(group); err != nil {
			return t, fmt.Errorf("on %s: %w", l.name, err)
		}
	}
	return t, nil
}

// Stage implements Host.
func (l *Local) Stage(ctx context.Context, f File) (Staged, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := policies.CheckMode(f.Mode); err != nil {
		return nil, l.fail("stage", f.Path, err)
	}
	t, err := l.resolve(ctx, f.Path, f.Owner, f.Group)
	if err != nil {
		return nil, l.fail("stage", f.Path, err)
	}
	dirfd, err := l.w.walk(t, true, t.gid)
	if err != nil {
		return nil, l.fail("stage", t.full, err)
	}
	s, err := l.stageIn(dirfd, t, f)
	if err != nil {
		unix.Close(dirfd)
		return nil, l.fail("stage", t.full, err)
	}
	return s, nil
}

func (l *Local) stageIn(dirfd int, t target, f File) (*localStaged, error) {
	st, exists, err := statTarget(dirfd, t.base, t.full)
	if err != nil {
		return nil, err
	}
	if exists && st.Uid != 0 && int(st.Uid) != t.owner.UID {
		return nil, foreignOwner(t.full, int(st.Uid), t.owner.Name)
	}
	if _, err := sweepIn(dirfd, t.base); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(procPath(dirfd))
	if err != nil {
		return nil, fmt.Errorf("open directory: %w", err)
	}
	pf, err := renameio.NewPendingFile(t.base, renameio.WithRoot(root), renameio.WithStaticPermissions(f.Mode.Perm()))
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("create temporary file: %w", err)
	}
	s := &localStaged{host: l, t: t, dirfd: dirfd, root: root, pf: pf, mode: f.Mode.Perm(), sum: f.SHA256()}
	if err := s.fill(f.Content); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

// localStaged is a pending file in the target's directory.
type localStaged struct {
	host  *Local
	t     target
	dirfd int
	root  *os.Root
	pf    *renameio.PendingFile
	mode  os.FileMode
	sum   string
	done  bool
}

// fill sets the owner on the open temp file, then writes and fsyncs.
func (s *localStaged) fill(content []byte) error {
	if err := s.pf.Chown(s.t.owner.UID, s.t.gid); err != nil {
		return fmt.Errorf("chown temporary file: %w", err)
	}
	if _, err := s.pf.Write(content); err != nil {
		return fmt.Errorf("write temporary file: %w", err)
	}
	if err := s.pf.Sync(); err != nil {
		return fmt.Errorf("fsync temporary file: %w", err)
	}
	return nil
}

// Commit implements Staged.
func (s *localStaged) Commit(ctx context.Context) error {
	if s.done {
		return errors.New("staged file already committed or aborted")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Refuse again if the target became a link or a non-file meanwhile.
	if _, _, err := statTarget(s.dirfd, s.t.base, s.t.full); err != nil {
		return s.host.fail("commit", s.t.full, err)
	}
	if err := s.pf.CloseAtomicallyReplace(); err != nil {
		return s.host.fail("commit", s.t.full, fmt.Errorf("rename: %w", err))
	}
	s.done = true
	defer s.release()
	if err := unix.Fsync(s.dirfd); err != nil {
		return s.host.fail("commit", s.t.full, fmt.Errorf("fsync directory: %w", err))
	}
	if err := s.verify(); err != nil {
		return s.host.fail("verify", s.t.full, err)
	}
	return nil
}

// verify reopens the target without following links and compares its
// owner, group, mode and SHA-256 with what was written.
func (s *localStaged) verify() error {
	st, sum, err := readNoFollow(s.dirfd, s.t.base)
	if err != nil {
		return err
	}
	switch {
	case int(st.Uid) != s.t.owner.UID || int(st.Gid) != s.t.gid:
		return fmt.Errorf("%w: owner is %d:%d, want %d:%d", ErrVerify, st.Uid, st.Gid, s.t.owner.UID, s.t.gid)
	case permOf(st.Mode) != s.mode:
		return fmt.Errorf("%w: mode is %04o, want %04o", ErrVerify, st.Mode&0o7777, s.mode)
	case sum != s.sum:
		return fmt.Errorf("%w: content hash differs from what was written", ErrVerify)
	}
	return nil
}

// Abort implements Staged.
func (s *localStaged) Abort(context.Context) error {
	if s.done {
		return nil
	}
	s.done = true
	err := s.pf.Cleanup()
	s.release()
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // swept meanwhile: gone is gone
		return s.host.fail("abort", s.t.full, err)
	}
	return nil
}

func (s *localStaged) release() {
	if s.root != nil {
		s.root.Close()
		s.root = nil
	}
	if s.dirfd >= 0 {
		unix.Close(s.dirfd)
		s.dirfd = -1
	}
}

// readNoFollow opens name in dirfd without following links and returns its
// stat and the hex SHA-256 of its content.
func readNoFollow(dirfd int, name string) (unix.Stat_t, string, error) {
	st, data, err := readFileNoFollow(dirfd, name)
	if err != nil {
		return st, "", err
	}
	return st, hashHex(data), nil
}

// readFileNoFollow opens name in dirfd without following links, refuses
// anything but a regular file, and returns its stat and content (at most
// maxReadBack bytes).
func readFileNoFollow(dirfd int, name string) (unix.Stat_t, []byte, error) {
	var st unix.Stat_t
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return st, nil, fmt.Errorf("%w: it is a symbolic link", ErrUnsafe)
		}
		return st, nil, fmt.Errorf("open: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if err := unix.Fstat(fd, &st); err != nil {
		return st, nil, fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return st, nil, fmt.Errorf("%w: it is %s", ErrUnsafe, fileType(st.Mode))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxReadBack+1))
	if err != nil {
		return st, nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > maxReadBack {
		return st, nil, errTooLarge
	}
	return st, data, nil
}

// isTempOf reports whether name is a temporary file of base, made by
// either transport: "." + base + decimal digits (renameio's, here), or
// "." + base + ".pcmkeys-" + lowercase hex digits (the remote script's, which
// sweeps both kinds too): a host written both ways is swept either way.
func isTempOf(name, base string) bool {
	rest, ok := strings.CutPrefix(name, "."+base)
	if !ok {
		return false
	}
	digits := "0123456789"
	if hex, ok := strings.CutPrefix(rest, ".pcmkeys-"); ok {
		rest, digits = hex, "0123456789abcdef"
	}
	return rest != "" && strings.Trim(rest, digits) == ""
}

// sweepIn removes the temporary files of base in dirfd (regular files
// only; a link of that name is removed itself, never followed).
func sweepIn(dirfd int, base string) (int, error) {
	d, err := os.Open(procPath(dirfd))
	if err != nil {
		return 0, fmt.Errorf("list directory: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, fmt.Errorf("list directory: %w", err)
	}
	n := 0
	for _, name := range names {
		if !isTempOf(name, base) {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		if typ := st.Mode & unix.S_IFMT; typ != unix.S_IFREG && typ != unix.S_IFLNK {
			continue
		}
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return n, fmt.Errorf("remove leftover %s: %w", name, err)
		}
		n++
	}
	if n > 0 {
		if err := unix.Fsync(dirfd); err != nil {
			return n, fmt.Errorf("fsync directory: %w", err)
		}
	}
	return n, nil
}

// Sweep implements Host.
func (l *Local) Sweep(ctx context.Context, path, owner string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t, err := l.resolve(ctx, path, owner, "")
	if err != nil {
		return 0, l.fail("sweep", path, err)
	}
	dirfd, err := l.w.walk(t, false, t.gid)
	if errors.Is(err, errMissingDir) {
		return 0, nil
	}
	if err != nil {
		return 0, l.fail("sweep", t.full, err)
	}
	defer unix.Close(dirfd)
	n, err := sweepIn(dirfd, t.base)
	if err != nil {
		return n, l.fail("sweep", t.full, err)
	}
	return n, nil
}

// foreignOwner refuses a target that someone other than root or the
// file's owner created: pcmkeys did not write it, and replacing it would
// hide whatever put it there.
func foreignOwner(path string, uid int, owner string) error {
	return fmt.Errorf("%w: %s is owned by uid %d, neither root nor %s: someone else put it there; check it, remove it, and rerun", ErrUnsafe, path, uid, owner)
}
