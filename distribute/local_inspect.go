package distribute

import (
	"context"
	"errors"
	"fmt"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
)

// Remove implements Host. path may start with "~/" for owner's home.
func (l *Local) Remove(ctx context.Context, path, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := l.resolve(ctx, path, owner, "")
	if err != nil {
		return l.fail("remove", path, err)
	}
	dirfd, err := l.w.walk(t, false, t.gid)
	if errors.Is(err, errMissingDir) {
		return nil
	}
	if err != nil {
		return l.fail("remove", t.full, err)
	}
	defer unix.Close(dirfd)
	var st unix.Stat_t
	err = unix.Fstatat(dirfd, t.base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return l.fail("remove", t.full, err)
	}
	if typ := st.Mode & unix.S_IFMT; typ != unix.S_IFREG && typ != unix.S_IFLNK {
		return l.fail("remove", t.full, fmt.Errorf("%w: %s is not a regular file (%s)", ErrUnsafe, t.full, fileType(st.Mode)))
	}
	if err := unix.Unlinkat(dirfd, t.base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return l.fail("remove", t.full, err)
	}
	if err := unix.Fsync(dirfd); err != nil {
		return l.fail("remove", t.full, fmt.Errorf("fsync directory: %w", err))
	}
	return nil
}

// Inspect implements Host. It reports a missing file or directory as
// Exists false, and an unsafe directory on the way as an error.
func (l *Local) Inspect(ctx context.Context, path, owner string) (FileState, error) {
	if err := ctx.Err(); err != nil {
		return FileState{}, err
	}
	t, err := l.resolve(ctx, path, owner, "")
	if err != nil {
		return FileState{Path: path}, l.fail("inspect", path, err)
	}
	fs := FileState{Path: t.full}
	dirfd, err := l.w.walk(t, false, t.gid)
	if errors.Is(err, errMissingDir) {
		return fs, nil
	}
	if err != nil {
		return fs, l.fail("inspect", t.full, err)
	}
	defer unix.Close(dirfd)
	var st unix.Stat_t
	err = unix.Fstatat(dirfd, t.base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return fs, nil
	}
	if err != nil {
		return fs, l.fail("inspect", t.full, err)
	}
	fs.Exists = true
	l.fillState(&fs, st, t.owner)
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		fs.Symlink = true
		return fs, nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fs, nil
	}
	// A file larger than any pcmkeys writes is reported, never read.
	if st.Size > maxReadBack {
		fs.TooLarge = true
		return fs, nil
	}
	// In a home, SSH reads the file as its owner: what the owner may not
	// read is not hashed there, and so not here either.
	if t.homeDepth > 0 && !ownerMay(st, t.owner, t.groups, 0o4) {
		return fs, nil
	}
	st2, sum, err := readNoFollow(dirfd, t.base)
	if errors.Is(err, errTooLarge) { // it grew meanwhile
		l.fillState(&fs, st2, t.owner)
		fs.TooLarge = true
		return fs, nil
	}
	if err != nil {
		return fs, l.fail("inspect", t.full, err)
	}
	l.fillState(&fs, st2, t.owner)
	fs.SHA256 = sum
	return fs, nil
}

// fillState fills fs from st. A uid that several accounts share (an
// image's test users mapped to one) is named as the owner asked about.
func (l *Local) fillState(fs *FileState, st unix.Stat_t, owner Account) {
	fs.Regular = st.Mode&unix.S_IFMT == unix.S_IFREG
	fs.UID, fs.GID = int(st.Uid), int(st.Gid)
	un, gn := l.acct.names(fs.UID, fs.GID)
	if fs.UID == owner.UID && owner.Name != "" {
		un = owner.Name
	}
	fs.Owner, fs.Group = escape.String(un), escape.String(gn)
	fs.Mode = permOf(st.Mode)
	fs.Size = st.Size
}

// Exec implements Host. A host with a root prefix is an image, not a
// running system: nothing runs there.
func (l *Local) Exec(ctx context.Context, command string) (string, error) {
	if l.w.root != "/" {
		return "", fmt.Errorf("host %s: %w", l.name, ErrNoExec)
	}
	out, err := exec.CommandContext(ctx, "sh", "-c", command).CombinedOutput()
	if err != nil {
		return escape.Lines(string(out)), fmt.Errorf("host %s: %s: %w", l.name, command, err)
	}
	return escape.Lines(string(out)), nil
}

// Read implements Host.
func (l *Local) Read(ctx context.Context, path, owner string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := l.resolve(ctx, path, owner, "")
	if err != nil {
		return nil, l.fail("read", path, err)
	}
	dirfd, err := l.w.walk(t, false, t.gid)
	if err != nil {
		return nil, l.fail("read", t.full, err)
	}
	defer unix.Close(dirfd)
	_, data, err := readFileNoFollow(dirfd, t.base)
	if err != nil {
		return nil, l.fail("read", t.full, err)
	}
	return data, nil
}
