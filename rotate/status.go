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
	// Files in place are not always files in force: ask the running
	// daemons (the same probe as doctor's), where the host works batches
	// last in the files' batch.
	probe := d.Host.Root == "" && d.Host.Role.RunsPacemaker()
	var then *distribute.Job
	if _, ok := h.(distribute.Batcher); ok && probe {
		then = &distribute.Job{Do: distribute.Run, Command: e.probeCommand(d.Host)}
	}
	files, ran := fileStatuses(ctx, h, d, then)
	for _, fs := range files {
		if fs.State != FileOK {
			hs.State = HostFindings
		}
		hs.Files = append(hs.Files, fs)
	}
	if probe {
		var p *nodeProbe
		var err error
		if ran != nil && !errors.Is(ran.Err, distribute.ErrNotRun) {
			p, err = probeAnswer(ran.Output, ran.Err)
		} else {
			p, err = e.probeNode(ctx, h, d.Host) // on its own: the batch did not run it
		}
		e.probeChecks(p, err, d.Host, "", nil, func(c Check) {
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

// fileStatuses judges the files d wants of its open host h against what
// the store says they should hold: every file from one batch of
// inspections where h works batches (then, if set, last in it; its
// outcome is returned), one file at a time elsewhere.
//
// A file rendered from its owner's home (an env file in the home) is
// inspected before its content is known: the inspection names the full
// path it found, HOME/REL for ~/REL, so the home comes back with the
// batch and costs no lookup of its own (the same home as a lookup's, but
// for a trailing slash: the same paths in the rendered file). Where the
// answer does not name it plainly (the inspection failed, or the home
// holds what a host's text is escaped for), the home is looked up as
// before, once per owner.
func fileStatuses(ctx context.Context, h distribute.Host, d deliver.Host, then *distribute.Job) ([]FileStatus, *distribute.Outcome) {
	conn := deliver.NewConn(h, d.Homes)
	_, batches := h.(distribute.Batcher)
	out := make([]FileStatus, len(d.Files))
	files := make([]distribute.File, len(d.Files))
	homeLater := make([]bool, len(d.Files))
	var jobs []distribute.Job
	var at []int // the want of each job
	for i, w := range d.Files {
		f := distribute.File{Path: w.File.Path, Owner: w.File.Owner}
		switch {
		case w.Mode == deliver.Remove:
		case batches && w.Render != nil && d.Homes[f.Owner] == "" && strings.HasPrefix(f.Path, "~/"):
			homeLater[i] = true
		default:
			var err error
			if f, err = conn.Resolve(ctx, w); err != nil {
				out[i] = judgeFile(w, f, distribute.FileState{}, err)
				continue
			}
		}
		files[i] = f
		jobs = append(jobs, distribute.Job{File: distribute.File{Path: f.Path, Owner: f.Owner}, Do: distribute.Look})
		at = append(at, i)
	}
	if then != nil {
		jobs = append(jobs, *then)
	}
	outs := distribute.Apply(ctx, h, jobs)
	var ran *distribute.Outcome
	if then != nil {
		ran = &outs[len(at)]
	}
	for k, o := range outs[:len(at)] {
		i, w := at[k], d.Files[at[k]]
		f := files[i]
		if homeLater[i] {
			c := conn
			if home, ok := homeIn(w.File.Path, o); ok {
				c = deliver.NewConn(h, map[string]string{w.File.Owner: home})
			}
			var err error
			if f, err = c.Resolve(ctx, w); err != nil {
				// Resolved before its inspection, as ever: that failure
				// is the file's.
				out[i] = judgeFile(w, f, distribute.FileState{}, err)
				continue
			}
		}
		out[i] = judgeFile(w, f, o.State, o.Err)
	}
	return out, ran
}

// homeIn is the home directory an inspection of ~/REL found REL in: its
// full path less REL, if that is a plain absolute path (text a host sends
// is escaped with backslashes: a home holding one is looked up instead).
func homeIn(path string, o distribute.Outcome) (string, bool) {
	rel, ok := strings.CutPrefix(path, "~/")
	if !ok || o.Err != nil {
		return "", false
	}
	home, ok := strings.CutSuffix(o.State.Path, "/"+rel)
	if !ok || !strings.HasPrefix(home, "/") || strings.Contains(home, `\`) {
		return "", false
	}
	return home, true
}

// judgeFile judges one file w wants: f is the file it should be (with
// its content, unless w removes it), st what an inspection found at its
// path, and err why f could not be resolved or inspected.
func judgeFile(w deliver.Want, f distribute.File, st distribute.FileState, err error) FileStatus {
	fs := FileStatus{Path: w.File.Path, Kind: w.Step.Kind, Owner: w.File.Owner, State: FileOK}
	if w.Mode == deliver.Remove {
		switch {
		case errors.Is(err, distribute.ErrUnknownUser):
		case err != nil:
			fs.State, fs.Detail = FileError, err.Error()
		case st.Exists:
			fs.State, fs.Detail = FileStale, "belongs to a revoked admin"
		}
		return fs
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
