// Package deliver is the engine beneath pcmkeys's lifecycle workflows: it
// brings each host to the files the workflow says it should hold. It
// writes a file where it is missing or differs, stages files on every
// host and commits them everywhere at once, removes an admin's own files,
// and reports per host and per file what it did, hosts in parallel.
//
// It decides nothing about keys: the workflows in package rotate read the
// store and the config, and hand it a plan ([Host] and its [Want]s). It
// writes through package distribute, which owns the write protocol (the
// checks of a target, the atomic replace, the verification).
//
// A host's files of one phase travel together: where the host works
// batches (an SSH host, a distribute.Batcher) a delivery judges, writes
// and removes them in one round trip, a stage stages them in one, a commit
// commits them — and runs the host's [Then] — in one. Other hosts (Local)
// work them one at a time, to the same end.
//
// A host reached in two phases of one workflow (a node that is also an
// admin's client host) logs in once: the first phase keeps its connection
// for the later one ([Keep], [Handover]).
package deliver
