// Package rotate is the life of a key in a Pacemaker cluster: a key is
// generated, delivered, rotated and revoked. Its workflows, one file each,
// are init (the cluster's first keys), onboard (an admin's key on their
// client hosts), fetch (an admin fetches their own), rotate (new keys,
// staged on every node and committed everywhere at once; rotate_live*.go
// is the authkey on a live cluster), revoke (an admin cut out of every
// node, their sessions closed and their files removed), push (hosts
// converged to the store), import (keys already on a node adopted) and
// status and doctor (what hosts hold and run, compared with the store).
//
// Every workflow that changes something has one shape (see workflow.go):
// validate the request, take the cluster's lock, plan, act, report and
// append to the audit trail. Workflows are plain functions over an [Env]
// — the config, a key store and a way to reach hosts — and know nothing
// of cobra or terminals; the CLI renders their [Report]s.
//
// The store is the source of truth and is written before the hosts, which
// hold copies. Getting files onto hosts is the engine's job beneath
// (internal/deliver): a workflow hands it the files each host should
// hold. A host that failed is named in the report and the error wraps
// [ErrPartial]; rerunning the workflow, or push, finishes the job.
package rotate
