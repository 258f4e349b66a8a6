package distribute

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
)

// accounts resolves user and group names for a local host: from
// ROOT/etc/passwd and ROOT/etc/group when the host has a root and those
// files exist, from the system's databases otherwise.
type accounts struct {
	root string
}

func (a accounts) dbFile(name string) (string, bool) {
	if a.root == "" {
		return "", false
	}
	p := filepath.Join(a.root, "etc", name)
	fi, err := os.Lstat(p)
	return p, err == nil && fi.Mode().IsRegular()
}

func (a accounts) user(name string) (Account, error) {
	if p, ok := a.dbFile("passwd"); ok {
		// name:password:uid:gid:gecos:home:shell
		f, found, err := scanDB(p, name, 7)
		if err != nil || !found {
			return Account{}, unknown(ErrUnknownUser, name, err)
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return Account{}, fmt.Errorf("%s: malformed entry for %q", p, name)
		}
		return Account{Name: name, UID: uid, GID: gid, Home: f[5]}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, unknown(ErrUnknownUser, name, nil)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return Account{Name: name, UID: uid, GID: gid, Home: u.HomeDir}, nil
}

func (a accounts) group(name string) (int, error) {
	if p, ok := a.dbFile("group"); ok {
		// name:password:gid:members
		f, found, err := scanDB(p, name, 4)
		if err != nil || !found {
			return 0, unknown(ErrUnknownGroup, name, err)
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return 0, fmt.Errorf("%s: malformed entry for %q", p, name)
		}
		return gid, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, unknown(ErrUnknownGroup, name, nil)
	}
	return strconv.Atoi(g.Gid)
}

// groupIDs returns the ids of a's groups: its primary group and those
// that list it as a member.
func (a accounts) groupIDs(acct Account) []int {
	ids := []int{acct.GID}
	if p, ok := a.dbFile("group"); ok {
		// name:password:gid:members
		scanLines(p, 4, func(f []string) bool {
			if gid, err := strconv.Atoi(f[2]); err == nil && slices.Contains(strings.Split(f[3], ","), acct.Name) {
				ids = append(ids, gid)
			}
			return false
		})
		return ids
	}
	if u, err := user.Lookup(acct.Name); err == nil {
		gs, _ := u.GroupIds()
		for _, g := range gs {
			if gid, err := strconv.Atoi(g); err == nil {
				ids = append(ids, gid)
			}
		}
	}
	return ids
}

// names returns the user and group names of uid and gid, or their numbers.
func (a accounts) names(uid, gid int) (string, string) {
	un, gn := strconv.Itoa(uid), strconv.Itoa(gid)
	if p, ok := a.dbFile("passwd"); ok {
		if f, found, _ := scanDBByID(p, uid, 2, 7); found {
			un = f[0]
		}
	} else if u, err := user.LookupId(un); err == nil {
		un = u.Username
	}
	if p, ok := a.dbFile("group"); ok {
		if f, found, _ := scanDBByID(p, gid, 2, 4); found {
			gn = f[0]
		}
	} else if g, err := user.LookupGroupId(gn); err == nil {
		gn = g.Name
	}
	return un, gn
}

func unknown(sentinel error, name string, cause error) error {
	if cause != nil {
		return fmt.Errorf("%w %q: %v", sentinel, name, cause)
	}
	return fmt.Errorf("%w %q", sentinel, name)
}

// scanDB finds the colon-separated line whose first field is name.
func scanDB(path, name string, fields int) ([]string, bool, error) {
	return scanLines(path, fields, func(f []string) bool { return f[0] == name })
}

func scanDBByID(path string, id, col, fields int) ([]string, bool, error) {
	want := strconv.Itoa(id)
	return scanLines(path, fields, func(f []string) bool { return f[col] == want })
}

func scanLines(path string, fields int, match func([]string) bool) ([]string, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != fields {
			continue
		}
		if match(f) {
			return f, true, nil
		}
	}
	return nil, false, sc.Err()
}

// checkHome refuses an account whose home directory a host wrote with
// characters that have no place in a path: it would be shown, and used
// to build paths.
func checkHome(a Account) error {
	if escape.String(a.Home) != a.Home {
		return fmt.Errorf("the home directory of %s holds control characters: %s", a.Name, escape.String(a.Home))
	}
	return nil
}
