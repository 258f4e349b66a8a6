package distribute

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
	"github.com/pcmkeys/pcmkeys/distribute/internal/remote"
)

// A batch over SSH: the records the remote script takes, one session that
// runs them, and the answers it gives, read record by record.

// record is one file of a batch (or a command, or a password), as the
// remote script takes it (see script.sh): its content (a password's, the
// password) goes to stdin when the operation reads it.
type record struct {
	op, path, owner, group, mode, sum, tmp string
	content                                []byte
}

// reads reports whether the script reads the record's content.
func (r record) reads() bool { return r.temp() || r.op == "setpass" }

// temp reports whether the record makes a temporary file.
func (r record) temp() bool {
	op := strings.TrimPrefix(r.op, "sweep+")
	return op == "stage" || op == "write" || op == "converge"
}

// answer is what the script said of one record.
type answer struct {
	at, path, state, tmp, did string
	account                   string // UID:GID:HOME, a stage's
	swept                     int
	hasSwept                  bool
	code                      int // from an "err" line
	msg                       string
	hasErr                    bool
	end                       int
	ended                     bool
	said                      []string // lines without the colon: its commands' stderr
	out                       []string // a run's output, or chpasswd's
	seen                      bool     // the script said something of it
}

// failed reports whether the record ended in a failure: a chain stopped
// there.
func (a answer) failed() bool { return a.ended && (a.end != 0 || a.hasErr) }

// batchOut is a batch's answers and what was said outside any record.
type batchOut struct {
	answers []answer
	said    []string
}

// batch runs recs in one session of the script in form (batch or chain)
// and returns each record's answer. err is the session's own failure (the
// host unreachable, a timeout, ctx): records it cut short have no end.
func (h *SSHHost) batch(ctx context.Context, form string, recs []record) (batchOut, error) {
	out := batchOut{answers: make([]answer, len(recs))}
	c, err := h.conn()
	if err != nil {
		return out, &notStarted{err}
	}
	return h.batchOn(ctx, c, h.timeout, form, recs)
}

func (h *SSHHost) batchOn(ctx context.Context, c *ssh.Client, timeout time.Duration, form string, recs []record) (batchOut, error) {
	out := batchOut{answers: make([]answer, len(recs))}
	args := []string{form, h.root, "", "0", ""}
	total := 0
	for _, r := range recs {
		if r.reads() {
			total += len(r.content) + 1
		}
	}
	// The contents (key material) in one buffer of their size, wiped once
	// sent.
	stdin := &secretReader{b: make([]byte, 0, total)}
	defer stdin.wipe()
	for _, r := range recs {
		size := "0"
		if r.reads() {
			n := len(stdin.b)
			stdin.b = append(stdin.b, r.content...)
			if r.op == "setpass" {
				// Read as a line: one cut short is not one.
				stdin.b = append(stdin.b, '\n')
			}
			size = strconv.Itoa(len(stdin.b) - n)
		}
		args = append(args, r.op, r.path, r.owner, r.group, r.mode, r.sum, size, r.tmp)
	}
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxOutput, maxOutput
	err := h.session(ctx, c, timeout, remote.Command(args...), remote.Input(stdin), &stdout, &stderr)
	out.parse(stdout.String())
	if s := strings.TrimSpace(stderr.String()); s != "" {
		if h.sudo && strings.Contains(s, "sudo:") {
			s = "sudo failed (passwordless sudo is required): " + s
		}
		out.said = append(out.said, s)
	}
	var ee *ssh.ExitError
	switch {
	case err == nil, errors.As(err, &ee):
		// The script's own exit says nothing the records do not.
		return out, nil
	case errors.Is(err, ErrUnreachable), ctx.Err() != nil:
		return out, err
	}
	return out, fmt.Errorf("%w: %s", ErrUnreachable, escape.String(err.Error()))
}

// parse reads the script's lines: ":N KEY VALUE" for record N, and the
// lines of its commands' stderr, which belong to the record under way.
// Anything malformed is kept as text, never trusted. A record ended well
// only if its first end says 0 and no err came before it: the script's
// relay (batch.sh) reads an owner's run so, and a command after the run
// runs only then.
func (b *batchOut) parse(s string) {
	cur := -1
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if line == "" {
			continue
		}
		n, key, val, ok := tagged(line, len(b.answers))
		if !ok {
			if cur >= 0 && !b.answers[cur].ended {
				b.answers[cur].said = append(b.answers[cur].said, line)
			} else {
				b.said = append(b.said, line)
			}
			continue
		}
		cur = n
		a := &b.answers[n]
		if a.ended {
			continue // a record's answer ends with its end
		}
		a.seen = true
		switch key {
		case "at":
			a.at = val
		case "path":
			a.path = val
		case "state":
			a.state = val
		case "tmp":
			a.tmp = val
		case "account":
			a.account = val
		case "out":
			a.out = append(a.out, val)
		case "did":
			a.did = val
		case "swept":
			a.swept, a.hasSwept = atoi(val)
		case "err":
			// A refusal whatever its code says, as the script's relay of
			// an owner's run reads it.
			code, msg, _ := strings.Cut(val, " ")
			n, ok := atoi(code)
			if !ok {
				n, msg = 1, val
			}
			a.code, a.msg, a.hasErr = n, msg, true
		case "end":
			// The record's end; one whose code is not a number is a
			// failure, as the relay reads it.
			n, ok := atoi(val)
			if !ok {
				n = 1
			}
			a.end, a.ended = n, true
		}
	}
}

// tagged splits ":N KEY VALUE" with N a record of a batch of n.
func tagged(line string, n int) (int, string, string, bool) {
	rest, ok := strings.CutPrefix(line, ":")
	if !ok {
		return 0, "", "", false
	}
	num, rest, ok := strings.Cut(rest, " ")
	i, okN := atoi(num)
	if !ok || !okN || i >= n {
		return 0, "", "", false
	}
	key, val, _ := strings.Cut(rest, " ")
	return i, key, val, true
}

func atoi(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// err is the record's failure (nil if it ended well), as the one-file
// operations report theirs: a *PathError for op (or the step the script
// was at) wrapping the script's refusal, or serr, the session's failure,
// for a record it cut short.
func (b *batchOut) err(h *SSHHost, k int, op, path string, serr error) error {
	a := b.answers[k]
	if a.ended && a.end == 0 && !a.hasErr {
		return nil
	}
	if a.at != "" {
		op = a.at
	}
	said := a.said
	if !a.ended {
		said = append(said, b.said...)
	}
	var err error
	switch {
	case a.hasErr:
		err = &remoteError{code: a.code, msg: escape.String(strings.Join(append(said, a.msg), "\n"))}
	case a.ended:
		msg := strings.Join(said, "\n")
		if msg == "" {
			msg = fmt.Sprintf("remote command exited %d", a.end)
		}
		err = &remoteError{code: a.end, msg: escape.String(msg)}
	case serr != nil:
		err = serr
	default:
		msg := "the remote side gave no answer for this file"
		if len(said) > 0 {
			msg += ": " + strings.Join(said, "\n")
		}
		err = errors.New(escape.String(msg))
	}
	return h.fail(op, path, err)
}

// state reads the record's inspection into a FileState.
func (b *batchOut) state(k int, path string) (FileState, error) {
	a := b.answers[k]
	st := FileState{Path: path}
	if a.path == "" && a.state == "" {
		return st, nil
	}
	if err := parseInspect(a.path+"\n"+a.state+"\n", &st); err != nil {
		return FileState{Path: path}, err
	}
	return st, nil
}

// ran reads a Run record's answer as Exec reports a command: its output,
// and an error naming the host and the command.
func (b *batchOut) ran(h *SSHHost, k int, command string, serr error) (string, error) {
	out, err := b.exited(k, serr)
	if err != nil {
		return out, fmt.Errorf("host %s: %s: %w", h.name, command, err)
	}
	return out, nil
}

// passwordSet reads a SetPass record's answer as SetPassword reports
// chpasswd: an error naming the host and the user, with what chpasswd
// said (never the password: it reaches chpasswd through a pipe alone).
func (b *batchOut) passwordSet(h *SSHHost, k int, user string, serr error) error {
	out, err := b.exited(k, serr)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotRun):
		return notRun(h.name, Job{Do: SetPass, User: user})
	}
	return fmt.Errorf("host %s: set the password of %s with chpasswd: %w: %s", h.name, user, err, strings.TrimSpace(out))
}

// exited reads the answer of a record that runs a command (run, setpass):
// its output lines, escaped, and why it failed.
func (b *batchOut) exited(k int, serr error) (string, error) {
	a := b.answers[k]
	out := ""
	if len(a.out) > 0 {
		out = escape.Lines(strings.Join(a.out, "\n") + "\n")
	}
	var err error
	switch {
	case a.hasErr && a.code == 1 && strings.HasPrefix(a.msg, "not run"):
		err = ErrNotRun
	case a.hasErr:
		err = &remoteError{code: a.code, msg: escape.String(a.msg)}
	case a.ended && a.end != 0:
		err = fmt.Errorf("remote command exited %d", a.end)
	case a.ended:
		return out, nil
	case serr != nil:
		err = serr
	default:
		err = errors.New("the remote side gave no answer for the command")
	}
	return out, err
}
