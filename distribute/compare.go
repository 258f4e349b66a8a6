package distribute

import (
	"fmt"
	"io/fs"

	"github.com/pcmkeys/pcmkeys/policies"
)

// Finding is how a file on a host differs from what its policy says.
type Finding string

// The findings [Compare] returns, from the worst down.
const (
	FindingOK         Finding = "ok"
	FindingMissing    Finding = "missing"
	FindingNotRegular Finding = "not regular" // symlink, directory, FIFO, device…
	FindingContent    Finding = "content"     // hash differs, unreadable, or too large to read
	FindingOwner      Finding = "owner"       // owner or group
	FindingMode       Finding = "mode"
)

// modeBits are the bits of a mode that Compare judges: permissions and
// setuid, setgid and sticky (what [FileState.Mode] holds on every host).
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Compare judges st against want, in this order: missing, not regular,
// content, owner/group, mode. It is the one place that decides whether a
// file is as its policy says: delivery, status and doctor all ask it.
//
// want.Content == nil means the content is not judged (doctor knows only
// owner, group and mode). want.Group == "" means any group. The detail is
// prose for people ("owned by a:b, want c:d", "mode 0644, want 0600",
// "content differs", "larger than 16 MiB"), empty when FindingOK. A mode
// with setuid, setgid or sticky bits never matches a policy's mode, which
// has none.
func Compare(st FileState, want File) (Finding, string) {
	switch {
	case !st.Exists:
		return FindingMissing, "no such file"
	case st.Symlink:
		return FindingNotRegular, "a symbolic link"
	case !st.Regular:
		return FindingNotRegular, "not a regular file"
	}
	if want.Content != nil {
		switch {
		case st.TooLarge:
			return FindingContent, fmt.Sprintf("larger than %d MiB", maxReadBack>>20)
		case st.SHA256 == "":
			return FindingContent, "content could not be read"
		case st.SHA256 != want.SHA256():
			return FindingContent, "content differs"
		}
	}
	if st.Owner != want.Owner || (want.Group != "" && st.Group != want.Group) {
		w := want.Owner
		if want.Group != "" {
			w += ":" + want.Group
		}
		return FindingOwner, fmt.Sprintf("owned by %s:%s, want %s", st.Owner, st.Group, w)
	}
	if st.Mode&modeBits != want.Mode&modeBits {
		return FindingMode, fmt.Sprintf("mode %04o, want %04o", policies.UnixMode(st.Mode), policies.UnixMode(want.Mode))
	}
	return FindingOK, ""
}
