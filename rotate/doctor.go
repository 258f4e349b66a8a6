package rotate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// DoctorReport is the preflight of every host.
type DoctorReport struct {
	Hosts    []HostChecks `json:"hosts"`
	Problems int          `json:"problems"`
	// Warnings are checks that passed with a warning (OK and Warning).
	Warnings int `json:"warnings"`
}

// HostChecks are one host's checks.
type HostChecks struct {
	Host   string  `json:"host"`
	Role   string  `json:"role"`
	Checks []Check `json:"checks"`
}

// Check is one thing doctor looked at.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// Warning marks a passed check whose detail warns (it starts with
	// "warning: "): not counted as a problem.
	Warning bool `json:"warning,omitempty"`
}

// Doctor checks, without changing anything, what pcmkeys needs on every
// host: that it can log in and act as root, which Pacemaker runs there,
// that the server files and their directories have safe owners and modes,
// and that every admin's client files exist with theirs — and that their
// env file sets CIB_encrypted=true, without which Pacemaker talks in
// plaintext. On nodes and remote nodes it also asks the running daemons
// (doctor_pacemaker.go, doctor_pam.go): whether cib-credentials has any effect there,
// remote-tls-port, the remote CIB's TLS listener (restart pending, refused
// file), per-user logins against the PAM stack, and whether the daemon
// that uses the authkey holds the file's key. Its error wraps ErrFindings
// when anything is wrong.
// With hosts named, only those hosts are checked.
func Doctor(ctx context.Context, e *Env, hosts []string) (*DoctorReport, error) {
	rep := &DoctorReport{}
	checked, err := e.selectHosts(hosts)
	if err != nil {
		return rep, err
	}
	admins, err := e.Store.ListAdmins(ctx)
	if err != nil {
		return rep, fmt.Errorf("list admins: %w", err)
	}
	rep.Hosts = make([]HostChecks, len(checked))
	for i, err := range e.each(ctx, len(checked), func(ctx context.Context, i int) {
		rep.Hosts[i] = e.doctorHost(ctx, checked[i], admins)
	}) {
		if err != nil {
			h := checked[i]
			rep.Hosts[i] = HostChecks{Host: h.Name, Role: string(h.Role), Checks: []Check{{Name: "checked", Detail: "not checked: " + err.Error()}}}
		}
	}
	for _, h := range rep.Hosts {
		for _, c := range h.Checks {
			if !c.OK {
				rep.Problems++
			} else if c.Warning {
				rep.Warnings++
			}
		}
	}
	if rep.Problems > 0 {
		return rep, fmt.Errorf("%w: %d problem(s)", ErrFindings, rep.Problems)
	}
	return rep, nil
}

func (e *Env) doctorHost(ctx context.Context, h config.Host, admins []keystore.Admin) HostChecks {
	hc := HostChecks{Host: h.Name, Role: string(h.Role)}
	add := func(name string, ok bool, detail string) {
		hc.Checks = append(hc.Checks, Check{Name: name, OK: ok, Detail: detail})
	}
	conn, err := e.connect(ctx, h)
	if err != nil {
		add("reachable", false, err.Error())
		return hc
	}
	defer conn.Close()
	add("reachable", true, "")
	daemons, version := false, ""
	if out, err := conn.Exec(ctx, "id -u"); errors.Is(err, distribute.ErrNoExec) {
		add("acts as root", true, "host under a root prefix: files only")
	} else {
		root := err == nil && strings.TrimSpace(out) == "0"
		add("acts as root", root, firstLine(out+" "+errString(err)))
		if h.Role.RunsPacemaker() {
			out, err := conn.Exec(ctx, versionCommand)
			v := versionRE.FindString(out)
			daemons, version = root && h.Root == "", v
			detail := v
			if v != "" && cachesAuthkey(v) {
				detail += ": reads the authkey only at start (rotate --authkey needs a restart)"
			}
			add("pacemaker", err == nil && v != "", detail+errString(err))
		}
	}
	var credOK *bool
	for _, k := range []policies.FileKind{policies.CIBCredentials, policies.Authkey} {
		if !h.Role.Holds(k) {
			continue
		}
		fp := e.Config.Policy.Files[k]
		st, err := conn.Inspect(ctx, fp.Path, fp.Owner)
		ok, detail := fileChecks(st, err, fp.Owner, fp.Group, fp.Mode)
		add(fp.Path, ok, detail)
		if k == policies.CIBCredentials && err == nil {
			credOK = &ok
		}
	}
	if daemons {
		e.pacemakerChecks(ctx, conn, h, version, credOK, func(c Check) { hc.Checks = append(hc.Checks, c) })
	}
	for _, a := range admins {
		if !a.Active() {
			continue
		}
		for _, c := range a.Clients {
			if c.Host != h.Name {
				continue
			}
			mode := e.Config.Policy.Files[policies.ClientKey].Mode
			st, err := conn.Inspect(ctx, c.KeyFile, a.User)
			ok, detail := fileChecks(st, err, a.User, "", mode)
			add(a.User+" "+c.KeyFile, ok, detail)
			env, err := conn.Read(ctx, c.EnvFile, a.User)
			switch {
			case err != nil:
				add(a.User+" "+c.EnvFile, false, err.Error())
			case !strings.Contains(string(env), "CIB_encrypted='true'") && !strings.Contains(string(env), "CIB_encrypted=true"):
				add(a.User+" "+c.EnvFile, false, "lacks CIB_encrypted=true: Pacemaker would talk to the CIB in plaintext")
			default:
				add(a.User+" "+c.EnvFile, true, "")
			}
		}
	}
	return hc
}

// fileChecks judges a file's existence, owner and mode (not its content:
// status compares that with the store).
func fileChecks(st distribute.FileState, err error, owner, group string, mode fs.FileMode) (bool, string) {
	if err != nil {
		return false, err.Error()
	}
	finding, detail := distribute.Compare(st, distribute.File{Owner: owner, Group: group, Mode: mode})
	if finding == distribute.FindingMissing {
		detail = "missing"
	}
	return finding == distribute.FindingOK, detail
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " " + firstLine(err.Error())
}
