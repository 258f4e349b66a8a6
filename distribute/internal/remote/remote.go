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
	"io"
	"strconv"
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
// batch.sh without their comment and blank lines, and a last line that
// says it arrived whole. It travels on the command's stdin, ahead of any
// content (see [Command]).
var Script = compact(head+"\n"+protocol+"\n"+batch) + scriptEnd + "\n"

// scriptEnd is the script's last line, a no-op: the command runs the
// script only if it ends so.
const scriptEnd = ": pcmkeys script end"

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

// boot reads the script from stdin (exactly its length, with dd, which
// never reads past it: the contents that follow are the script's to
// read), refuses one cut short, and runs it with its own text as its
// first argument: the script needs its text to run itself again as the
// owner of a home directory, and a shell started with -c has no way to
// name it. The script travels on stdin rather than in the command line so
// that every packet of a session stays small: x/crypto/ssh keeps each
// connection's cipher buffer as large as the largest packet it sent, and
// a 15 KB exec request held 15 KB per connection for the connection's
// life (22 MB at 1,000 hosts).
var boot = `s=$(dd bs=64K iflag=fullblock,count_bytes count=` + strconv.Itoa(len(Script)) + ` status=none) || exit 2
case $s in *` + Quote(scriptEnd) + `) ;; *) echo "pcmkeys: the script arrived cut short" >&2; exit 2 ;; esac
set -- "$s" "$@"
eval "$1"`

// Command returns the command line that runs the script with args (the
// operation and its arguments, see script.sh), each quoted for the remote
// shell. Its stdin must carry [Script] first ([Input]), then the
// contents; the command line never carries key material.
func Command(args ...string) string {
	var cmd strings.Builder
	cmd.WriteString("sh -c " + Quote(boot) + " pcmkeys")
	for _, a := range args {
		cmd.WriteString(" " + Quote(a))
	}
	return cmd.String()
}

// script is Script's bytes, never written to.
var script = []byte(Script)

// Input is a command's stdin: the script, then what r holds. Its WriteTo
// sends the script from the one shared copy and r through r's own
// WriteTo where it has one (a reader of key material wipes as it goes),
// else through a 4 KB buffer.
func Input(r io.Reader) io.Reader { return &input{rest: r} }

type input struct {
	off  int // of the script sent
	rest io.Reader
}

func (in *input) Read(p []byte) (int, error) {
	if in.off < len(script) {
		n := copy(p, script[in.off:])
		in.off += n
		return n, nil
	}
	if in.rest == nil {
		return 0, io.EOF
	}
	return in.rest.Read(p)
}

// chunk bounds what one write of the script carries.
const chunk = 4 << 10

func (in *input) WriteTo(w io.Writer) (int64, error) {
	var sent int64
	for in.off < len(script) {
		end := min(in.off+chunk, len(script))
		n, err := w.Write(script[in.off:end])
		in.off += n
		sent += int64(n)
		if err != nil {
			return sent, err
		}
	}
	if in.rest == nil {
		return sent, nil
	}
	if wt, ok := in.rest.(io.WriterTo); ok {
		n, err := wt.WriteTo(w)
		return sent + n, err
	}
	n, err := io.CopyBuffer(w, struct{ io.Reader }{in.rest}, make([]byte, chunk))
	return sent + n, err
}

// Quote single-quotes s for the remote shell.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
