// Package rotate holds pcmkeys's lifecycle workflows — init, onboard and
// the ones that follow — as plain functions over an [Env]: the config, a
// key store and a way to reach hosts. It knows nothing of cobra or
// terminals; the CLI renders its [Report]s.
//
// Every workflow validates all of its input (names, hosts, users on the
// client hosts) before it changes anything, writes to the store before it
// writes to hosts (the store is the source of truth; hosts hold copies),
// and reports per host what happened. A host that failed is named in the
// report and the error wraps [ErrPartial]; rerunning the workflow, or
// push, finishes the job.
package rotate
