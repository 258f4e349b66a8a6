package rotate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// Login checks.
//
// A delivered key file proves nothing by itself: Pacemaker falls back to
// anonymous TLS when CIB_key_file is missing, refuses a key file the
// admin does not own, and after the handshake runs a PAM login that needs
// hacluster's password. onboard --verify and status --verify therefore run
// the real client (cib.verify_command, default "cibadmin --query") as the
// admin, on each of their client hosts, with nothing but their env file,
// and report per client whether the login works, and if not why, in the
// admin's words.

// LoginCheck is whether an admin's env file logs them in to the CIB from
// one client host.
type LoginCheck struct {
	Host   string `json:"host"`
	User   string `json:"user"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// verifyScript runs as the admin: it sources their env file as their
// shell would and runs the client. $1 is the env file, $2 the command.
const verifyScript = `[ -r "$1" ] || { echo "pcmkeys: the env file $1 is missing or unreadable"; exit 90; }
. "$1" || { echo "pcmkeys: sourcing the env file failed"; exit 91; }
eval "$2" >/dev/null`

// verifyLogin runs the client as user on conn (the client host h) with the
// env file of entry.
func (e *Env) verifyLogin(ctx context.Context, h config.Host, conn distribute.Host, user string, entry keystore.Client) LoginCheck {
	lc := LoginCheck{Host: h.Name, User: user}
	if h.Root != "" {
		lc.Reason = "not checked: " + h.Name + " is an image under a root prefix, where nothing runs"
		return lc
	}
	env := entry.EnvFile
	if strings.HasPrefix(env, "~/") {
		acct, err := conn.LookupUser(ctx, user)
		if err != nil {
			lc.Reason = "could not look the user up: " + err.Error()
			return lc
		}
		env = expandHome(env, acct.Home)
	}
	cmd := "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH; exec runuser -u " + shellQuote(user) +
		" -- sh -c " + shellQuote(verifyScript) + " verify " + shellQuote(env) + " " + shellQuote(e.Config.CIB.VerifyCommand)
	out, err := conn.Exec(ctx, cmd)
	if err == nil {
		lc.OK = true
		return lc
	}
	lc.Reason = loginReason(err, out, e.Config.CIB)
	return lc
}

// loginReason says in the admin's words why a login failed.
func loginReason(err error, out string, cib config.CIB) string {
	first := oneLine(out)
	switch {
	case errors.Is(err, distribute.ErrUnreachable), errors.Is(err, context.DeadlineExceeded):
		return "the client host could not be reached: " + err.Error()
	case strings.Contains(out, "pcmkeys: the env file"), strings.Contains(out, "sourcing the env file"):
		return first + " (pcmkeys push writes it again)"
	case strings.Contains(out, "runuser:"):
		return "could not run the check as the admin: " + first
	case strings.Contains(out, "not found"):
		return fmt.Sprintf("the client is not installed here (%q: %s); install pacemaker-cli, or set cib.verify_command", cib.VerifyCommand, first)
	case strings.Contains(out, "Permission denied"):
		return "Pacemaker refused the key file: it must be owned by the admin and readable by no one else (" + first + ")"
	case strings.Contains(out, "Protocol error"):
		return "the cluster refused the login: the key, hacluster's password or CIB_encrypted does not match what " +
			cib.Server + " expects (pcmkeys status shows a file that drifted; pacemaker's log on the node tells a wrong key from a wrong password)"
	case strings.Contains(out, "Connection refused"), strings.Contains(out, "not connected"), strings.Contains(out, "No route"), strings.Contains(out, "Could not connect"):
		return "nothing answers at " + cib.Server + ":" + strconv.Itoa(cib.Port) + ": remote-tls-port is not set, pacemaker-based is not running, or it refused cib-credentials when it started (" + first + ")"
	}
	if first == "" {
		first = err.Error()
	}
	return "the login failed: " + first
}

// verifyDelivered checks the login of user on each client whose files were
// just delivered.
func (e *Env) verifyDelivered(ctx context.Context, clients []client, user string, entry keystore.Client, delivered func(host string) bool) []LoginCheck {
	var out []LoginCheck
	for _, c := range clients {
		if !delivered(c.host.Name) {
			continue
		}
		entry.Host = c.host.Name
		out = append(out, e.verifyLogin(ctx, c.host, c.conn, user, entry))
	}
	return out
}

// loginFailures turns failed checks into a *PartialError (exit 3).
func loginFailures(checks []LoginCheck) error {
	var failed []HostResult
	for _, lc := range checks {
		if !lc.OK {
			failed = append(failed, HostResult{Host: lc.Host, Status: "login failed", Error: lc.User + ": " + lc.Reason})
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &PartialError{Failed: failed}
}

// statusLogins checks the login of every active admin on every client host
// the config lists, hosts in parallel.
func (e *Env) statusLogins(ctx context.Context, admins []keystore.Admin) []LoginCheck {
	type job struct {
		host  config.Host
		user  string
		entry keystore.Client
	}
	var jobs []job
	for _, a := range admins {
		if !a.Active() {
			continue
		}
		for _, c := range a.Clients {
			if h, ok := e.Config.Host(c.Host); ok {
				jobs = append(jobs, job{h, a.User, c})
			}
		}
	}
	out := make([]LoginCheck, len(jobs))
	for i, err := range e.each(ctx, len(jobs), func(ctx context.Context, i int) {
		j := jobs[i]
		conn, done, fail := e.engine().Open(ctx, deliver.Host{Host: j.host})
		if fail != nil {
			out[i] = LoginCheck{Host: j.host.Name, User: j.user, Reason: "the client host could not be reached: " + fail.Error}
			return
		}
		defer done()
		out[i] = e.verifyLogin(ctx, j.host, conn, j.user, j.entry)
	}) {
		if err != nil {
			out[i] = LoginCheck{Host: jobs[i].host.Name, User: jobs[i].user, Reason: "not checked: " + err.Error()}
		}
	}
	return out
}
