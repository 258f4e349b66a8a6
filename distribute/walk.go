package distribute

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/policies"
)

// target is a file's location on a host, resolved and checked.
type target struct {
	full      string   // the path on the host, "~" expanded, before any root
	dirs      []string // directory components from / to the parent
	base      string
	homeDepth int // len of the home dir's components, 0 if not in a home
	owner     Account
	groups    []int // in a home, the owner's group ids (see ownerMay)
	gid       int
}

// resolvePath expands "~/" against owner's home and validates the result.
func resolvePath(p string, owner Account) (target, error) {
	t := target{owner: owner, gid: owner.GID}
	full := p
	if strings.HasPrefix(p, "~/") {
		if err := policies.CheckAbsPath(owner.Home); err != nil {
			return t, fmt.Errorf("home directory of %s: %w", owner.Name, err)
		}
		full = path.Join(owner.Home, p[2:])
		t.homeDepth = len(strings.Split(owner.Home[1:], "/"))
		if p == "~/" {
			return t, fmt.Errorf("%w: %q names no file", policies.ErrBadPath, p)
		}
	}
	if err := policies.CheckAbsPath(full); err != nil {
		return t, err
	}
	comps := strings.Split(full[1:], "/")
	if t.homeDepth >= len(comps) {
		return t, fmt.Errorf("%w: %q is the home directory itself", policies.ErrBadPath, p)
	}
	t.full, t.dirs, t.base = full, comps[:len(comps)-1], comps[len(comps)-1]
	return t, nil
}

// homeDir returns the home directory of a target in a home.
func (t target) homeDir() string {
	return "/" + strings.Join(t.dirs[:t.homeDepth], "/")
}

// walker opens directories one component at a time without following links
// and checks that each is safe.
type walker struct {
	root string // "/" or the host's root prefix
	euid int
}

// errMissingDir is returned by walk (with create false) when a directory on
// the way does not exist.
var errMissingDir = errors.New("directory does not exist")

// walk returns an open descriptor of t's parent directory. With create,
// missing directories are made as the package documentation says; a
// missing home directory is always an error.
//
// In a home, as over SSH where the owner walks it, the owner must be let
// into every directory from the home down, and with create must be let
// write in the deepest that exists (where the file or the first missing
// directory is made).
func (w walker) walk(t target, create bool, parentGID int) (int, error) {
	fd, err := unix.Open(w.root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, fmt.Errorf("the host's root directory %s does not exist", w.root)
		}
		return -1, fmt.Errorf("open root %s: %w", w.root, err)
	}
	st, err := w.checkDir(fd, w.root, false, t.owner.UID)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	at := ""
	for i, c := range t.dirs {
		parent := at
		at += "/" + c
		inHome := t.homeDepth > 0 && i+1 >= t.homeDepth
		nfd, err := unix.Openat(fd, c, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			switch {
			case t.homeDepth > 0 && i+1 <= t.homeDepth:
				err = fmt.Errorf("home directory %s of %s does not exist", t.homeDir(), t.owner.Name)
			case !create:
				err = fmt.Errorf("%s: %w", at, errMissingDir)
			case t.homeDepth > 0 && i >= t.homeDepth && !ownerMay(st, t.owner, t.groups, 0o2):
				err = fmt.Errorf("%s may not write in directory %s", t.owner.Name, parent)
			default:
				nfd, err = w.mkdir(fd, c, at, inHome, i == len(t.dirs)-1, t.owner.UID, parentGID)
			}
		} else if errors.Is(err, unix.ELOOP) {
			err = fmt.Errorf("%w: directory %s is a symbolic link", ErrUnsafe, at)
		} else if errors.Is(err, unix.ENOTDIR) {
			err = fmt.Errorf("%w: %s is not a directory", ErrUnsafe, at)
			var st unix.Stat_t
			if unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = fmt.Errorf("%w: directory %s is a symbolic link", ErrUnsafe, at)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = nfd
		if st, err = w.checkDir(fd, at, inHome, t.owner.UID); err == nil && inHome && !ownerMay(st, t.owner, t.groups, 0o1) {
			err = fmt.Errorf("%s may not enter directory %s", t.owner.Name, at)
		}
		if err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if create && t.homeDepth > 0 && !ownerMay(st, t.owner, t.groups, 0o2) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s may not write in directory %s", t.owner.Name, at)
	}
	return fd, nil
}

// ownerMay reports whether owner may do what perm asks (0o4 read, 0o2
// write, 0o1 search) with a file, by its mode: the owner's bits if the
// file is theirs, the group's if its group is one of groups (the owner's),
// the others' otherwise. Root may do anything.
func ownerMay(st unix.Stat_t, owner Account, groups []int, perm uint32) bool {
	switch {
	case owner.UID == 0:
		return true
	case int(st.Uid) == owner.UID:
		return st.Mode&(perm<<6) != 0
	case slices.Contains(groups, int(st.Gid)):
		return st.Mode&(perm<<3) != 0
	}
	return st.Mode&perm != 0
}

// mkdir creates one missing directory with the mode and owner it should
// have, and returns it open.
func (w walker) mkdir(parent int, name, at string, inHome, isParent bool, ownerUID, gid int) (int, error) {
	mode, uid, g := uint32(0o755), -1, -1
	switch {
	case inHome:
		mode, uid, g = 0o700, ownerUID, gid
	case isParent:
		mode, g = 0o750, gid
	}
	if err := unix.Mkdirat(parent, name, mode); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("create directory %s: %w", at, err)
	}
	fd, err := unix.Openat(parent, name, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open new directory %s: %w", at, err)
	}
	if err := unix.Fchown(fd, uid, g); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("chown new directory %s: %w", at, err)
	}
	if err := unix.Fchmod(fd, mode); err != nil { // the umask may have cut it
		unix.Close(fd)
		return -1, fmt.Errorf("chmod new directory %s: %w", at, err)
	}
	return fd, nil
}

// checkDir refuses a directory that someone untrusted could write to,
// and returns its stat.
func (w walker) checkDir(fd int, at string, inHome bool, ownerUID int) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return st, fmt.Errorf("stat directory %s: %w", at, err)
	}
	uid := int(st.Uid)
	trusted := uid == 0 || uid == w.euid || (inHome && uid == ownerUID)
	if !trusted {
		return st, fmt.Errorf("%w: directory %s is owned by uid %d, not root", ErrUnsafe, at, uid)
	}
	if st.Mode&0o022 != 0 {
		return st, fmt.Errorf("%w: directory %s is writable by group or other (mode %04o)", ErrUnsafe, at, st.Mode&0o7777)
	}
	return st, nil
}

// statTarget looks at the target without following links. It returns
// exists false for a missing target, and refuses anything but a regular
// file.
func statTarget(dirfd int, base, full string) (unix.Stat_t, bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return st, false, nil
	case err != nil:
		return st, false, fmt.Errorf("stat %s: %w", full, err)
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return st, true, fmt.Errorf("%w: %s is a symbolic link", ErrUnsafe, full)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return st, true, fmt.Errorf("%w: %s is not a regular file (%s)", ErrUnsafe, full, fileType(st.Mode))
	}
	return st, true, nil
}

func fileType(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	case unix.S_IFLNK:
		return "a symbolic link"
	}
	return "not a regular file"
}

// permOf converts a stat mode to fs.FileMode permission and special bits.
func permOf(m uint32) fs.FileMode {
	out := fs.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		out |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		out |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// procPath names an open descriptor so os.OpenRoot can reopen exactly the
// directory that was checked, not whatever its path names now.
func procPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }
