package rotate

import (
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/audit"
)

// record appends what a workflow did to the audit trail, if there is one.
// Dry runs and refused input change nothing and are not recorded. A failure to record is
// returned with the workflow's own error: an action that could not be
// audited is not reported as a success.
func (e *Env) record(rep *Report, args []string, runErr error) error {
	if e.Audit == nil || rep == nil || e.DryRun || errors.Is(runErr, ErrBadInput) {
		return runErr // nothing was done
	}
	r := audit.Record{
		Time: e.now(), Operator: e.Operator, VaultIdentity: e.VaultIdentity,
		Action: rep.Action, Args: args, Result: "ok",
	}
	for _, c := range rep.Credentials {
		change := "used"
		switch {
		case c.Destroyed:
			change = "destroyed"
		case c.Created:
			change = "created"
		}
		r.Credentials = append(r.Credentials, audit.Credential{ID: string(c.ID), Version: c.Version, Fingerprint: c.Fingerprint, Change: change})
	}
	for _, h := range rep.Hosts {
		if h.Status == StatusOK {
			r.HostsOK = append(r.HostsOK, h.Host)
		} else {
			r.HostsFailed = append(r.HostsFailed, audit.HostError{Host: h.Host, Error: string(h.Status) + ": " + h.Error})
		}
	}
	for _, c := range rep.Prechecks {
		r.Steps = append(r.Steps, fmt.Sprintf("precheck %s: %v: %s", c.Name, c.OK, c.Detail))
	}
	for _, s := range rep.Restart {
		r.Steps = append(r.Steps, fmt.Sprintf("plan %s: %s: %s", s.Host, s.Version, s.Text()))
	}
	for _, s := range rep.Timeline {
		r.Steps = append(r.Steps, fmt.Sprintf("%s %s: %s: %s", s.At, s.Host, s.Step, s.Result))
	}
	switch {
	case errors.Is(runErr, ErrPartial):
		r.Result = "partial"
	case runErr != nil:
		r.Result, r.Error = "failed", runErr.Error()
	}
	if err := e.Audit.Append(r); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}
