package rotate

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"
)

// Live remote-CIB sessions.
//
// pacemaker-based checks a client's key only in the TLS handshake, and a
// session it has accepted lasts until the client leaves or based stops
// (verified on 3.0.2: crm_mon stays connected across a rotation of
// cib-credentials). Cutting a node — a new cib-credentials file without
// the revoked key — therefore leaves a revoked admin who is connected
// connected. After the cut pcmkeys closes every established connection to
// the node's remote-tls-port with `ss -K`, which needs the kernel's
// sock_destroy support (CONFIG_INET_DIAG_DESTROY), and then counts what is
// left. The remaining admins' clients (crm_mon, a pcs GUI) reconnect with
// the key they hold. A node where sessions remain is a failure with the
// manual step, never a silent success.

// closeSessionsScript closes the established connections to a local TCP
// port and prints "closed N remaining M". $1 is the port.
const closeSessionsScript = `command -v ss >/dev/null 2>&1 || { echo "ss is not installed (iproute2)" >&2; exit 20; }
f="( sport = :$1 )"
before=$(ss -Htn state established "$f" | wc -l)
[ "$before" -eq 0 ] || ss -K -Htn state established "$f" >/dev/null 2>&1 || true
after=$(ss -Htn state established "$f" | wc -l)
echo "closed $((before - after)) remaining $after"`

// cutSteps sets what runs on node d once it was cut (its new
// cib-credentials in place): hacluster's new password pw (if any), then
// the closing of its live sessions. Over SSH both ride in the round trip
// that commits or writes the file (deliver.Host.Password and Then), not
// sessions of their own.
func (e *Env) cutSteps(d *deliver.Host, pw keys.Secret) {
	if pw != nil && runsPassword(d.Host) {
		w := e.nodePasswordWanted(pw, deliver.WriteAlways)
		d.Password = &w
	}
	e.sessionSteps(d)
}

// sessionSteps sets the closing of node d's live sessions once it was
// cut: a Then, the command run with its files. A dry run, or an image
// under a root prefix (it runs no daemons), runs nothing there: an After
// only says so. Nothing is set where the config turned it off or d is
// not a node.
func (e *Env) sessionSteps(d *deliver.Host) {
	h := d.Host
	if !e.Config.CIB.CloseSessions || h.Role != config.RoleNode {
		return
	}
	port := e.Config.CIB.Port
	if e.DryRun || h.Root != "" {
		action := SessionsSkipped
		if e.DryRun {
			action = SessionsPlanned
		}
		d.After = func(_ context.Context, _ distribute.Host, res *HostResult) {
			res.Sessions = &SessionStep{Port: port, Action: action}
		}
		return
	}
	d.Then = &deliver.Then{
		Command: closeSessionsCommand(port),
		Done: func(ctx context.Context, out string, err error, res *HostResult) {
			sessionsInto(res, e.judgeSessions(h, port, out, err))
		},
	}
}

// sessionsInto puts the closing of a node's sessions in its result: one
// that failed fails the host.
func sessionsInto(res *HostResult, step *SessionStep) {
	res.Sessions = step
	if step.Action == SessionsFailed {
		res.Status = StatusFailed
		if res.Error == "" {
			res.Error = "live sessions: " + step.Error
		}
	}
}

// closeSessionsCommand is the root command that closes the established
// connections to port.
func closeSessionsCommand(port int) string {
	return "sh -c " + shellQuote(closeSessionsScript) + " close " + strconv.Itoa(port)
}

// judgeSessions reads what closeSessionsScript said on node h (its
// output, or why it failed).
func (e *Env) judgeSessions(h config.Host, port int, out string, err error) *SessionStep {
	step := &SessionStep{Port: port}
	if err != nil {
		step.Action = SessionsFailed
		step.Error = fmt.Sprintf("could not list or close the connections to port %d (%v); %s", port, oneLine(err.Error(), out), manualSessionStep(h, port))
		return step
	}
	var closed, remaining int
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "closed %d remaining %d", &closed, &remaining); err != nil {
		step.Action = SessionsFailed
		step.Error = fmt.Sprintf("unexpected answer from ss on %s; %s", h.Name, manualSessionStep(h, port))
		return step
	}
	step.Closed, step.Remaining = closed, remaining
	switch {
	case remaining > 0:
		step.Action = SessionsFailed
		step.Error = fmt.Sprintf("%d live remote-CIB session(s) on port %d could not be closed (does the kernel lack CONFIG_INET_DIAG_DESTROY?); %s", remaining, port, manualSessionStep(h, port))
	case closed > 0:
		step.Action = SessionsClosed
	default:
		step.Action = SessionsNone
	}
	e.log().Info("live sessions", "host", h.Name, "port", port, "closed", closed, "remaining", remaining)
	return step
}

// manualSessionStep says how an operator finishes the job by hand.
func manualSessionStep(h config.Host, port int) string {
	return fmt.Sprintf("close them by hand: on %s run `ss -K '( sport = :%d )'` as root, or restart Pacemaker there (put the node in standby first)", h.Name, port)
}

// oneLine joins an error and a command's output into one short line.
func oneLine(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			out = append(out, p)
		}
	}
	s := strings.Join(out, ": ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
