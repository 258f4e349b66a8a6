package distribute

import (
	"io/fs"
	"testing"
)

// The remote script's answers, read by the Go side. What both transports
// report for the same file is the host contract's (distribute/hosttest).

func regular(path, owner, group string, uid, gid int, mode fs.FileMode, content string) FileState {
	return FileState{Path: path, Exists: true, Regular: true, Owner: owner, Group: group, UID: uid, GID: gid, Mode: mode, Size: int64(len(content)), SHA256: hashHex([]byte(content))}
}

// TestParseInspect: answers the remote side should never give are
// refused, not half-read.
func TestParseInspect(t *testing.T) {
	sum := hashHex([]byte("k"))
	for _, out := range []string{
		"", "missing\n", "/x\nother\n", "/x\nfile 0 0 600 1 root root\n", "/x\nfile 0 0 600 1 root root zz\n",
		"/x\nfile 0 0 99 1 root root " + sum + "\n", "/x\nfile 0 0 17777 1 root root " + sum + "\n",
		"/x\nfile 0 0 600 99999999999 root root " + sum + "\n", "/x\nsymlink 0 0 777 1 root\n", "x\nmissing\n",
	} {
		var st FileState
		if err := parseInspect(out, &st); err == nil {
			t.Errorf("accepted %q as %+v", out, st)
		}
	}
	var st FileState
	if err := parseInspect("/x\nfile 5 6 600 1 UNKNOWN UNKNOWN -\n", &st); err != nil || st.Owner != "5" || st.Group != "6" || st.SHA256 != "" {
		t.Errorf("unknown owner: %+v %v", st, err)
	}
}
