package rotate

import (
	"context"

	"github.com/pcmkeys/pcmkeys/policies"
)

// workflow is the one shape every workflow that changes something has:
// validate what was asked (input refused here changes nothing and is not
// audited), take the cluster's lock, plan and act, report, and append to
// the audit trail what was done — a run the lock refused included.
type workflow struct {
	action string
	// args are what the operator named (admins, hosts), for the audit.
	args []string
	// validate checks the request before the lock is taken; nil for none.
	validate func() error
	// act plans and acts under the lock, filling in the report.
	act func(ctx context.Context, rep *Report) error
}

// run runs w and returns its report, which is filled in as far as the
// workflow went even when it failed.
func (e *Env) run(ctx context.Context, w workflow) (*Report, error) {
	rep := &Report{Action: w.action, DryRun: e.DryRun}
	if w.validate != nil {
		if err := w.validate(); err != nil {
			return rep, err
		}
	}
	err := e.withLock(ctx, w.action, func() error { return w.act(ctx, rep) })
	return rep, e.record(rep, w.args, err)
}

// validUsers refuses any name that is not a valid user name.
func validUsers(users []string) error {
	for _, u := range users {
		if err := policies.ValidateUser(u); err != nil {
			return badInput("%v", err)
		}
	}
	return nil
}
