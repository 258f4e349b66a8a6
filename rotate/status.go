package rotate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

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
	AgeSeconds  int64       `json:"age_seconds"`
	Due         time.Time   `json:"due"`
	Overdue     bool        `json:"overdue"`
}

// HostStatus is one host.
type HostStatus struct {
	Host  string       `json:"host"`
	State State        `json:"state"` // ok, findings, or how the host failed (a deliver status)
	Error string       `json:"error,omitempty"`
	Files []FileStatus `json:"files"`
}

// State is what status found of a host or a file: a short value; the
// prose is in Detail (or Error).
type State string

// States.
const (
	FileOK         State = "ok"
	FileMissing    State = "missing"
	FileDrift      State = "drift"
	FileWrongOwner State = "wrong_owner"
	FileWrongMode  State = "wrong_mode"
	FileUnsafe     State = "unsafe"
	// FileStale is a file of a revoked admin's that is still there.
	FileStale State = "stale"
	FileError State = "error"
	// FileRestartPending is a daemon that runs with what the files held
	// when it started, not with what they hold now (see doctor).
	FileRestartPending State = "restart_pending"
	// FileDaemon is another problem a running daemon has with its files.
	FileDaemon State = "daemon"
	// HostFindings is a host with at least one file not ok.
	HostFindings State = "findings"
)

// FileStatus is one file on one host.
type FileStatus struct {
	Path   string            `json:"path"`
	Kind   policies.FileKind `json:"kind"`
	Owner  string            `json:"owner"`
	State  State             `json:"state"`
	Detail string            `json:"detail,omitempty"`
}

// StatusRequest says what status looks at beyond the files.
type StatusRequest struct {
	// Verify also runs the real client as each admin on each of their
	// client hosts: does their env file log them in?
	Verify bool
	// Hosts, if any, limits the hosts looked at (the credentials are
	// always reported).
	Hosts []string
}

// Status compares every host (or those req names) with the store,
// without changing anything, with the checks req asks for. Its error
// wraps ErrFindings when anything is not as it should be.
func Status(ctx context.Context, e *Env, req StatusRequest) (*StatusReport, error) {
	rep := &StatusReport{}
	ds, creds, err := e.desired(ctx, deliver.WriteIfDrift, req.Hosts)
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
		cs := CredentialStatus{ID: id, Version: cur.Version, Fingerprint: cur.Fingerprint, Created: cur.Created,
			Age: policies.FormatAge(now.Sub(cur.Created).Truncate(policies.Day)), AgeSeconds: int64(now.Sub(cur.Created).Seconds()),
			Due: e.Config.Policy.Due(id.Kind(), cur.Created)}
		cs.Overdue = !now.Before(cs.Due)
		if cs.Overdue {
			rep.Findings++
		}
		rep.Credentials = append(rep.Credentials, cs)
	}
	results := make([]HostStatus, len(ds))
	for i, err := range e.each(ctx, len(ds), func(ctx context.Context, i int) {
		results[i] = e.hostStatus(ctx, ds[i])
	}) {
		if err != nil {
			results[i] = HostStatus{Host: ds[i].Host.Name, State: State(deliver.StatusFailed), Error: "not checked: " + err.Error()}
		}
	}
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

func (e *Env) hostStatus(ctx context.Context, d deliver.Host) HostStatus {
	hs := HostStatus{Host: d.Host.Name, State: FileOK}
	h, done, fail := e.engine().Open(ctx, d)
	if fail != nil {
		hs.State, hs.Error = State(fail.Status), fail.Error
		return hs
	}
	defer done()
	conn := deliver.NewConn(h, d.Homes)
	for _, w := range d.Files {
		fs := fileStatus(ctx, conn, w)
		if fs.State != FileOK {
			hs.State = HostFindings
		}
		hs.Files = append(hs.Files, fs)
	}
	// Files in place are not always files in force: ask the running
	// daemons (the same probe as doctor's).
	if d.Host.Root == "" && d.Host.Role.RunsPacemaker() {
		e.pacemakerChecks(ctx, h, d.Host, "", nil, func(c Check) {
			if c.OK {
				return
			}
			state := FileDaemon
			if strings.Contains(c.Detail, "restart pending") {
				state = FileRestartPending
			}
			hs.Files = append(hs.Files, FileStatus{Path: c.Name, Kind: "daemon", State: state, Detail: c.Detail})
			hs.State = HostFindings
		})
	}
	return hs
}

// fileStatus judges one file on a host against what the store says it
// should hold.
func fileStatus(ctx context.Context, h *deliver.Conn, w deliver.Want) FileStatus {
	fs := FileStatus{Path: w.File.Path, Kind: w.Step.Kind, Owner: w.File.Owner, State: FileOK}
	if w.Mode == deliver.Remove {
		st, err := h.Inspect(ctx, w.File.Path, w.File.Owner)
		switch {
		case errors.Is(err, distribute.ErrUnknownUser):
		case err != nil:
			fs.State, fs.Detail = FileError, err.Error()
		case st.Exists:
			fs.State, fs.Detail = FileStale, "belongs to a revoked admin"
		}
		return fs
	}
	f, err := h.Resolve(ctx, w)
	var st distribute.FileState
	if err == nil {
		st, err = h.Inspect(ctx, f.Path, f.Owner)
	}
	switch {
	case errors.Is(err, distribute.ErrUnsafe):
		fs.State, fs.Detail = FileUnsafe, err.Error()
		return fs
	case err != nil:
		fs.State, fs.Detail = FileError, err.Error()
		return fs
	}
	finding, detail := distribute.Compare(st, f)
	fs.State = map[distribute.Finding]State{
		distribute.FindingOK: FileOK, distribute.FindingMissing: FileMissing, distribute.FindingNotRegular: FileUnsafe,
		distribute.FindingContent: FileDrift, distribute.FindingOwner: FileWrongOwner, distribute.FindingMode: FileWrongMode,
	}[finding]
	if finding == distribute.FindingContent {
		detail += " from the store"
	}
	fs.Detail = detail
	return fs
}
