package rotate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// ErrFindings marks a status that found drift, missing files or overdue
// keys (exit 4).
var ErrFindings = errors.New("status found problems")

// StatusReport is every credential and every host's files.
type StatusReport struct {
	Credentials []CredentialStatus `json:"credentials"`
	Hosts       []HostStatus       `json:"hosts"`
	Findings    int                `json:"findings"`
	// Logins are the login checks of status --verify.
	Logins []LoginCheck `json:"logins,omitempty"`
}

// CredentialStatus is one credential's current version.
type CredentialStatus struct {
	ID          keystore.ID `json:"id"`
	Version     int         `json:"version"`
	Fingerprint string      `json:"fingerprint"`
	Created     time.Time   `json:"created"`
	Age         string      `json:"age"`
	Due         time.Time   `json:"due"`
	Overdue     bool        `json:"overdue"`
}

// HostStatus is one host.
type HostStatus struct {
	Host  string       `json:"host"`
	State string       `json:"state"` // ok, findings, unreachable, failed
	Error string       `json:"error,omitempty"`
	Files []FileStatus `json:"files"`
}

// File states.
const (
	FileOK         = "ok"
	FileMissing    = "missing"
	FileDrift      = "drift"
	FileWrongOwner = "wrong owner"
	FileWrongMode  = "wrong mode"
	FileUnsafe     = "unsafe"
	FileStale      = "stale: belongs to a revoked admin"
	FileError      = "error"
	// FileRestartPending is a daemon that runs with what the files held
	// when it started, not with what they hold now (see doctor).
	FileRestartPending = "restart pending"
	// FileDaemon is another problem a running daemon has with its files.
	FileDaemon = "daemon"
)

// FileStatus is one file on one host.
type FileStatus struct {
	Path   string            `json:"path"`
	Kind   policies.FileKind `json:"kind"`
	Owner  string            `json:"owner"`
	State  string            `json:"state"`
	Detail string            `json:"detail,omitempty"`
}

// Status compares every host with the store, without changing anything.
// Its error wraps ErrFindings when anything is not as it should be.
func Status(ctx context.Context, e *Env) (*StatusReport, error) {
	return StatusWith(ctx, e, StatusRequest{})
}

// StatusRequest says what status looks at beyond the files.
type StatusRequest struct {
	// Verify also runs the real client as each admin on each of their
	// client hosts: does their env file log them in?
	Verify bool
}

// StatusWith is Status with the checks req asks for.
func StatusWith(ctx context.Context, e *Env, req StatusRequest) (*StatusReport, error) {
	rep := &StatusReport{}
	ds, creds, err := e.desired(ctx, writeIfDrift, nil)
	if err != nil {
		return rep, err
	}
	now := e.now()
	ids := make([]keystore.ID, 0, len(creds))
	for id := range creds {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		cur := creds[id].Version
		max := e.Config.Policy.RotateAfter.CIB
		if id == keystore.AuthkeyID {
			max = e.Config.Policy.RotateAfter.Authkey
		}
		cs := CredentialStatus{ID: id, Version: cur.Version, Fingerprint: cur.Fingerprint, Created: cur.Created,
			Age: policies.FormatAge(now.Sub(cur.Created).Truncate(policies.Day)), Due: cur.Created.Add(max)}
		cs.Overdue = !now.Before(cs.Due)
		if cs.Overdue {
			rep.Findings++
		}
		rep.Credentials = append(rep.Credentials, cs)
	}
	results := make([]HostStatus, len(ds))
	distribute.Each(ctx, indexes(len(ds)), e.Parallel, func(ctx context.Context, i int) error {
		results[i] = e.hostStatus(ctx, ds[i])
		return nil
	})
	for _, hs := range results {
		if hs.State != FileOK {
			rep.Findings += max(1, countFindings(hs))
		}
	}
	rep.Hosts = results
	if req.Verify {
		admins, err := e.Store.ListAdmins(ctx)
		if err != nil {
			return rep, fmt.Errorf("list admins: %w", err)
		}
		rep.Logins = e.statusLogins(ctx, admins)
		for _, lc := range rep.Logins {
			if !lc.OK {
				rep.Findings++
			}
		}
	}
	if rep.Findings > 0 {
		return rep, fmt.Errorf("%w: %d finding(s)", ErrFindings, rep.Findings)
	}
	return rep, nil
}

func countFindings(hs HostStatus) int {
	n := 0
	for _, f := range hs.Files {
		if f.State != FileOK {
			n++
		}
	}
	return n
}

func (e *Env) hostStatus(ctx context.Context, d delivery) HostStatus {
	hs := HostStatus{Host: d.host.Name, State: FileOK}
	h, done, fail := e.open(ctx, d)
	if fail != nil {
		hs.State, hs.Error = fail.Status, fail.Error
		return hs
	}
	defer done()
	for _, w := range d.files {
		fs := e.fileStatus(ctx, h, w)
		if fs.State != FileOK {
			hs.State = "findings"
		}
		hs.Files = append(hs.Files, fs)
	}
	// Files in place are not always files in force: ask the running
	// daemons (the same probe as doctor's).
	if d.host.Root == "" && (d.host.Role == config.RoleNode || d.host.Role == config.RoleRemoteNode) {
		e.pacemakerChecks(ctx, h, d.host, "", nil, func(c Check) {
			if c.OK {
				return
			}
			state := FileDaemon
			if strings.Contains(c.Detail, "restart pending") {
				state = FileRestartPending
			}
			hs.Files = append(hs.Files, FileStatus{Path: c.Name, Kind: "daemon", State: state, Detail: c.Detail})
			hs.State = "findings"
		})
	}
	return hs
}

func (e *Env) fileStatus(ctx context.Context, h distribute.Host, w wanted) FileStatus {
	fs := FileStatus{Path: w.file.Path, Kind: w.step.Kind, Owner: w.file.Owner, State: FileOK}
	if w.mode == removeFile {
		st, err := h.Inspect(ctx, w.file.Path, w.file.Owner)
		switch {
		case errors.Is(err, distribute.ErrUnknownUser):
		case err != nil:
			fs.State, fs.Detail = FileError, err.Error()
		case st.Exists:
			fs.State = FileStale
		}
		return fs
	}
	f, err := w.resolve(ctx, h)
	var st distribute.FileState
	if err == nil {
		st, err = h.Inspect(ctx, f.Path, f.Owner)
	}
	switch {
	case errors.Is(err, distribute.ErrUnsafe):
		fs.State, fs.Detail = FileUnsafe, err.Error()
	case err != nil:
		fs.State, fs.Detail = FileError, err.Error()
	case !st.Exists:
		fs.State = FileMissing
	case st.Symlink || !st.Regular:
		fs.State, fs.Detail = FileUnsafe, "not a regular file"
	case st.SHA256 != f.SHA256():
		fs.State, fs.Detail = FileDrift, "content differs from the store"
	case st.Owner != f.Owner || (f.Group != "" && st.Group != f.Group):
		fs.State, fs.Detail = FileWrongOwner, fmt.Sprintf("%s:%s", st.Owner, st.Group)
	case st.Mode != f.Mode:
		fs.State, fs.Detail = FileWrongMode, fmt.Sprintf("%04o", policies.UnixMode(st.Mode))
	}
	return fs
}
