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
package deliver
