package main

import (
	"errors"

	"golang.org/x/term"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
	"github.com/pcmkeys/pcmkeys/rotate"
)

// Exit codes, the contract scripts rely on.
const (
	exitOK       = 0
	exitError    = 1
	exitBadInput = 2
	exitPartial  = 3
	exitFindings = 4
	// exitLocked is another run holding the cluster's lock (--wait waits).
	exitLocked = 5
	// exitInterrupted follows the shell's 128+SIGINT.
	exitInterrupted = 130
)

// exitCode maps an error to the exit code, once, here.
func exitCode(err error) int {
	var fe *flagError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &fe),
		errors.Is(err, config.ErrInvalid),
		errors.Is(err, rotate.ErrBadInput),
		errors.Is(err, policies.ErrBadName),
		errors.Is(err, policies.ErrBadPath),
		errors.Is(err, policies.ErrUnsafeMode),
		errors.Is(err, keys.ErrSize),
		errors.Is(err, distribute.ErrExists):
		return exitBadInput
	case errors.Is(err, keystore.ErrLocked):
		return exitLocked
	case errors.Is(err, rotate.ErrPartial):
		return exitPartial
	case errors.Is(err, rotate.ErrFindings):
		return exitFindings
	}
	return exitError
}

func termIsTerminal(fd int) bool { return term.IsTerminal(fd) }
