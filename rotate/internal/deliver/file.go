package deliver

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/policies"
)

// Conn is an open host and the homes of owners looked up on it.
type Conn struct {
	distribute.Host
	homes map[string]string
}

// NewConn wraps an open connection for [Engine.File]; homes are the owners'
// home directories already known there (nil for none).
func NewConn(h distribute.Host, homes map[string]string) *Conn {
	return &Conn{Host: h, homes: homes}
}

// Resolve returns the file w writes: its content rendered from its
// owner's home when it needs one (looked up once per owner).
func (h *Conn) Resolve(ctx context.Context, w Want) (distribute.File, error) {
	f := w.File
	if w.Render == nil {
		return f, nil
	}
	home, ok := h.homes[f.Owner]
	if !ok {
		acct, err := h.LookupUser(ctx, f.Owner)
		if err != nil {
			return f, err
		}
		if h.homes == nil {
			h.homes = map[string]string{}
		}
		home = acct.Home
		h.homes[f.Owner] = home
	}
	content, err := w.Render(home)
	f.Content = content
	return f, err
}

// File brings one file on an open host to what w says, and returns its
// step for the report (with the fingerprint as the report shows it).
func (e *Engine) File(ctx context.Context, h *Conn, w Want) (FileStep, error) {
	step, err := e.file(ctx, h, w)
	step.Fingerprint = e.shown(step.Fingerprint)
	return step, err
}

func (e *Engine) file(ctx context.Context, h *Conn, w Want) (FileStep, error) {
	step := w.Step
	switch w.Mode {
	case LeaveAlone:
		step.Action, step.Detail = ActionNotTheirs, "not the admin's file"
		return step, nil
	case Remove:
		return e.removeOwn(ctx, h, w)
	}
	f, err := h.Resolve(ctx, w)
	if err != nil {
		return step, err
	}
	if w.Mode == WriteIfDrift && !e.DryRun {
		// Push converges: that includes what a killed run left behind.
		if step.Swept, err = h.Sweep(ctx, f.Path, f.Owner); err != nil {
			return step, err
		}
	}
	if w.Mode != WriteAlways || e.DryRun {
		st, err := h.Inspect(ctx, f.Path, f.Owner)
		if err != nil {
			return step, err
		}
		finding, _ := distribute.Compare(st, f)
		switch {
		case finding == distribute.FindingOK && w.Mode != WriteAlways:
			// (a dry run of WriteAlways says what the real run does: write)
			step.Action = ActionInSync
			return step, nil
		case w.Mode == KeepExisting && (finding == distribute.FindingContent || finding == distribute.FindingNotRegular):
			step.Action, step.Detail = ActionKept, "exists with other content (use import or push)"
			return step, nil
			// The same content with another owner or mode is ours: it is
			// written again with the policy's.
		}
	}
	if e.DryRun {
		step.Action = ActionWrite
		return step, nil
	}
	if w.Password != nil {
		err = setPassword(ctx, h.Host, w) // the transport itself: the wrapper hides its optional methods
	} else {
		err = distribute.Write(ctx, h.Host, f)
	}
	if err != nil {
		return step, err
	}
	step.Action = ActionWritten
	return step, nil
}

// setPassword sets the password with chpasswd, then records it in the
// marker (w.File), which decided whether it was needed.
func setPassword(ctx context.Context, h distribute.Host, w Want) error {
	text := w.Password.PasswordText()
	defer clear(text)
	if err := distribute.SetPassword(ctx, h, policies.SharedIdentity, text); err != nil {
		return err
	}
	if err := distribute.Write(ctx, h, w.File); err != nil {
		return fmt.Errorf("%s's password is set, but recording it failed: %w", policies.SharedIdentity, err)
	}
	return nil
}

// removeOwn removes a file of its owner's: a file there that belongs to
// someone else is not theirs to lose, and is left alone.
func (e *Engine) removeOwn(ctx context.Context, h distribute.Host, w Want) (FileStep, error) {
	step := w.Step
	st, err := h.Inspect(ctx, w.File.Path, w.File.Owner)
	switch {
	case errors.Is(err, distribute.ErrUnknownUser):
		step.Action, step.Detail = ActionRemoved, "the account is gone, and its home with it"
		return step, nil
	case err != nil:
		return step, err
	case st.Exists && st.Owner != w.File.Owner:
		step.Action, step.Detail = ActionNotTheirs, fmt.Sprintf("owned by %s, not the admin", st.Owner)
		return step, nil
	case e.DryRun:
		step.Action = ActionRemove
		return step, nil
	case !st.Exists:
		step.Action = ActionRemoved
		return step, nil
	}
	if err := h.Remove(ctx, w.File.Path, w.File.Owner); err != nil {
		return step, err
	}
	step.Action = ActionRemoved
	return step, nil
}
