package rotate

import (
	"context"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"
)

// engine is the delivery engine with this Env's hosts and settings.
func (e *Env) engine() *deliver.Engine {
	return &deliver.Engine{
		Connect: e.connect, Parallel: e.Parallel, DryRun: e.DryRun,
		Progress: e.Progress, Log: e.log(), Shown: e.shown,
	}
}

// What a workflow reports about hosts and files is the engine's.
type (
	HostResult    = deliver.Result
	FileStep      = deliver.FileStep
	SessionStep   = deliver.SessionStep
	PartialError  = deliver.PartialError
	SessionAction = deliver.SessionAction
	Action        = deliver.Action
)

// ErrPartial marks a run in which some hosts failed.
var ErrPartial = deliver.ErrPartial

// Host statuses.
const (
	StatusOK          = deliver.StatusOK
	StatusFailed      = deliver.StatusFailed
	StatusUnreachable = deliver.StatusUnreachable
	StatusTimedOut    = deliver.StatusTimedOut
	StatusPlanned     = deliver.StatusPlanned
	StatusNotInConfig = deliver.StatusNotInConfig
)

// File actions.
const (
	ActionWrite     = deliver.ActionWrite
	ActionInSync    = deliver.ActionInSync
	ActionKept      = deliver.ActionKept
	ActionWritten   = deliver.ActionWritten
	ActionStaged    = deliver.ActionStaged
	ActionCommitted = deliver.ActionCommitted
	ActionRemove    = deliver.ActionRemove
	ActionRemoved   = deliver.ActionRemoved
	ActionFailed    = deliver.ActionFailed
	ActionNotTheirs = deliver.ActionNotTheirs
	ActionLeftover  = deliver.ActionLeftover
)

// Session actions.
const (
	SessionsClosed  = deliver.SessionsClosed
	SessionsNone    = deliver.SessionsNone
	SessionsSkipped = deliver.SessionsSkipped
	SessionsFailed  = deliver.SessionsFailed
	SessionsPlanned = deliver.SessionsPlanned
)

// each runs fn for each of n hosts, e.Parallel at a time, and returns
// the error of each that never started (the run was cancelled), so that a
// host left unchecked is never taken for one found fine.
func (e *Env) each(ctx context.Context, n int, fn func(ctx context.Context, i int)) []error {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	return distribute.Each(ctx, all, e.Parallel, func(ctx context.Context, i int) error {
		fn(ctx, i)
		return nil
	})
}
