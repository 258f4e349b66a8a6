package audit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// DefaultSyslogTimeout bounds the delivery of one record to syslog: dial
// and write.
const DefaultSyslogTimeout = 5 * time.Second

// Syslog facility and severities (RFC 5424 section 6.2.1).
const (
	facilityAuthpriv = 10
	severityErr      = 3
	severityWarning  = 4
	severityInfo     = 6
)

// syslogTag is the program name each message carries: journalctl -t
// pcmkeys, or rsyslog's $programname.
const syslogTag = "pcmkeys"

// WithSyslog returns a copy of l that also sends every record, as one
// line, to the local syslog socket at socket (/dev/log, which journald
// serves too): facility authpriv, tag pcmkeys, severity info for a
// record whose result is ok, warning for partial and err for failed. The
// message is the record's JSON, the same bytes as its line in the trail.
// An empty socket returns l as it is: no syslog.
//
// A record syslog did not take within DefaultSyslogTimeout is an error
// of Append, like a record the file did not take.
func (l *Log) WithSyslog(socket string) *Log {
	if socket == "" {
		return l
	}
	c := *l
	c.syslog = socket
	if c.syslogTimeout == 0 {
		c.syslogTimeout = DefaultSyslogTimeout
	}
	return &c
}

// Syslog is the socket records also go to; empty for none.
func (l *Log) Syslog() string { return l.syslog }

// sendSyslog delivers one message to the socket: a datagram, or on a
// stream socket (syslog-ng's unix-stream) a line.
//
// It is not log/syslog: that package has no deadline, and a unix
// datagram socket blocks its sender once the receiver's queue is full (a
// journald or rsyslogd that stopped reading), so a run would hang after
// its work at the audit record; it also retries a failed write on a new
// connection, which could deliver a record twice. The message format is
// the one log/syslog and glibc's syslog(3) use on the local socket:
// "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG".
func (l *Log) sendSyslog(r Record, line []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.syslogTimeout)
	defer cancel()
	msg := syslogMessage(r, line, os.Getpid())
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unixgram", l.syslog)
	if errors.Is(err, syscall.EPROTOTYPE) {
		conn, err = d.DialContext(ctx, "unix", l.syslog)
		msg = append(msg, '\n') // octet-stuffed framing (RFC 6587 3.4.2)
	}
	if err != nil {
		return fmt.Errorf("audit syslog %s: %w", l.syslog, unwrapOp(err))
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("audit syslog %s: %w", l.syslog, err)
	}
	if _, err := conn.Write(msg); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("audit syslog %s: not taken within %v (is the syslog daemon reading?)", l.syslog, l.syslogTimeout)
		}
		return fmt.Errorf("audit syslog %s: %w", l.syslog, unwrapOp(err))
	}
	return nil
}

// syslogMessage renders the message for record r whose JSON is line.
func syslogMessage(r Record, line []byte, pid int) []byte {
	sev := severityInfo
	switch r.Result {
	case "ok":
	case "partial":
		sev = severityWarning
	default:
		sev = severityErr
	}
	head := fmt.Sprintf("<%d>%s %s[%d]: ", facilityAuthpriv<<3|sev, r.Time.Local().Format(time.Stamp), syslogTag, pid)
	return append([]byte(head), line...)
}

// unwrapOp drops net.OpError's repetition of the socket's path ("dial
// unixgram /dev/log: connect: …" becomes "connect: …").
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return fmt.Errorf("%s: %w", op.Op, op.Err)
	}
	return err
}
