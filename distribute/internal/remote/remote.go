// Package remote is the remote half of distribute's write protocol, for
// hosts reached over SSH: a POSIX sh script (script.sh) that runs there,
// the command line that starts it, and the exit codes it answers with.
// It works one file, or a batch of files in one run (many files of one
// host, one session). Its usage, operations, answers and guarantees are
// written at the top of script.sh; protocol.sh holds the write protocol's
// steps, batch.sh the loop over the files.
package remote

import (
	_ "embed"
	"strings"
)

// The script's parts: script.sh (its usage, arguments and helpers),
// protocol.sh (the write protocol's steps), batch.sh (the record loop).
var (
	//go:embed script.sh
	head string
	//go:embed protocol.sh
	protocol string
	//go:embed batch.sh
	batch string
)

// Script is the script's text as it runs: script.sh, protocol.sh and
// batch.sh without their comment and blank lines. It travels in every
// command line (about 13 KB of the 22 the files hold).
var Script = compact(head + "\n" + protocol + "\n" + batch)

// compact drops comment and blank lines (the script has no multi-line
// string holding either).
func compact(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// MaxRead bounds how much of a file is read to verify, inspect or read
// it, on every transport: the largest file pcmkeys writes (the script's
// max; a test keeps them equal).
const MaxRead = 16 << 20

// The script's exit codes besides 0 (done); any other is a failure.
const (
	ExitUnsafe   = 10 // an unsafe target: a link, not a regular file, a writable directory
	ExitNoUser   = 11 // no such user
	ExitNoGroup  = 12 // no such group
	ExitVerify   = 13 // verification failed
	ExitNoHome   = 14 // the owner's home directory is missing
	ExitTooLarge = 15 // a file larger than MaxRead
	ExitLost     = 16 // a batch's record failed with its content unread: later contents are not attempted
	ExitUsage    = 2  // a malformed argument (a temporary file suffix) or an unknown operation
)

// boot runs the script given as its first argument. The script needs its
// own text to run itself again as the owner of a home directory, and a
// shell started with -c SCRIPT has no way to name it.
const boot = `eval "$1"`

// Command returns the command line that runs the script with args (the
// operation and its arguments, see script.sh): the script's text and the
// arguments, each quoted for the remote shell. It never carries key
// material, which goes to the script's stdin.
func Command(args ...string) string {
	var cmd strings.Builder
	cmd.WriteString("sh -c " + Quote(boot) + " pcmkeys " + Quote(Script))
	for _, a := range args {
		cmd.WriteString(" " + Quote(a))
	}
	return cmd.String()
}

// Quote single-quotes s for the remote shell.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
