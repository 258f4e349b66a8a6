package audit

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listenSyslog is a syslog daemon's socket: datagrams (journald, rsyslog)
// or a stream (syslog-ng's unix-stream).
func listenSyslog(t *testing.T, network string) (string, net.Conn, net.Listener) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "log")
	if network == "unixgram" {
		c, err := net.ListenUnixgram(network, &net.UnixAddr{Name: p, Net: network})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return p, c, nil
	}
	ln, err := net.Listen(network, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return p, nil, ln
}

var syslogLine = regexp.MustCompile(`^<(\d+)>([A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d) pcmkeys\[(\d+)\]: (\{.*\})$`)

func TestSyslogDatagram(t *testing.T) {
	sock, c, _ := listenSyslog(t, "unixgram")
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(trail).WithSyslog(sock)
	if l.Syslog() != sock {
		t.Fatalf("Syslog() = %q", l.Syslog())
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		result string
		pri    int // authpriv (10) * 8 + severity
	}{{"ok", 86}, {"partial", 84}, {"failed", 83}}
	for _, tt := range tests {
		r := Record{Time: at, Operator: "op", Action: "rotate", Args: []string{"alice"}, Result: tt.result,
			Credentials: []Credential{{ID: "cib/hacluster", Version: 2, Fingerprint: "SHA256:abc", Change: "created"}},
			HostsOK:     []string{"node1"}, HostsFailed: []HostError{{Host: "node2", Error: "timed_out: two\nlines"}},
			Steps: []string{"+1s node1: restart: ok"}, Error: "an error"}
		if err := l.Append(r); err != nil {
			t.Fatalf("%s: %v", tt.result, err)
		}
		buf := make([]byte, 64<<10)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		m := syslogLine.FindSubmatch(buf[:n])
		if m == nil {
			t.Fatalf("%s: message %q is not <PRI>STAMP pcmkeys[PID]: JSON on one line", tt.result, buf[:n])
		}
		if pri, _ := strconv.Atoi(string(m[1])); pri != tt.pri {
			t.Errorf("%s: priority %d, want %d", tt.result, pri, tt.pri)
		}
		if string(m[2]) != at.Local().Format(time.Stamp) {
			t.Errorf("%s: time stamp %q, want the record's %q", tt.result, m[2], at.Local().Format(time.Stamp))
		}
		if pid, _ := strconv.Atoi(string(m[3])); pid != os.Getpid() {
			t.Errorf("pid %d, want %d", pid, os.Getpid())
		}
		var got Record
		if err := json.Unmarshal(m[4], &got); err != nil {
			t.Fatal(err)
		}
		recs, err := l.Read()
		if err != nil {
			t.Fatal(err)
		}
		last, _ := json.Marshal(recs[len(recs)-1])
		if string(m[4]) != string(last) {
			t.Errorf("syslog has\n%s\nthe trail has\n%s", m[4], last)
		}
	}
	// The original Log is left as it was; an empty socket is no syslog.
	if Open(trail).Syslog() != "" || Open(trail).WithSyslog("").Syslog() != "" {
		t.Error("a Log without WithSyslog sends to syslog")
	}
}

func TestSyslogStream(t *testing.T) {
	sock, _, ln := listenSyslog(t, "unix")
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			line = err.Error()
		}
		got <- line
	}()
	l := Open(filepath.Join(t.TempDir(), "a.jsonl")).WithSyslog(sock)
	if err := l.Append(Record{Operator: "op", Action: "push", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	line := <-got
	if !strings.HasSuffix(line, "\n") || syslogLine.FindStringSubmatch(strings.TrimSuffix(line, "\n")) == nil {
		t.Errorf("stream message %q: want one line ending in a newline", line)
	}
}

// A syslog that cannot take the record is an error naming the socket; the
// trail still has the record, and the file's own failure is reported
// beside syslog's.
func TestSyslogFailures(t *testing.T) {
	dir := t.TempDir()
	notSocket := filepath.Join(dir, "plain")
	os.WriteFile(notSocket, nil, 0o600)
	for _, sock := range []string{filepath.Join(dir, "missing"), notSocket} {
		l := Open(filepath.Join(dir, "a.jsonl")).WithSyslog(sock)
		err := l.Append(Record{Operator: "op", Action: "push", Result: "ok"})
		if err == nil || !strings.Contains(err.Error(), "audit syslog "+sock+": ") {
			t.Errorf("%s: error %v, want one naming the socket", sock, err)
		}
		if strings.Count(err.Error(), sock) != 1 {
			t.Errorf("the socket's path is said more than once: %v", err)
		}
	}
	if recs, err := Open(filepath.Join(dir, "a.jsonl")).Read(); err != nil || len(recs) != 2 {
		t.Errorf("trail: %d records, %v; want both, syslog's failure aside", len(recs), err)
	}
	// Both fail: both are named.
	os.Mkdir(filepath.Join(dir, "dir.jsonl"), 0o700)
	err := Open(filepath.Join(dir, "dir.jsonl")).WithSyslog(filepath.Join(dir, "missing")).Append(Record{Action: "push", Result: "ok"})
	if err == nil || !strings.Contains(err.Error(), "audit "+filepath.Join(dir, "dir.jsonl")) || !strings.Contains(err.Error(), "audit syslog") {
		t.Errorf("file and syslog failing: %v", err)
	}
}

// A syslog daemon that stopped reading fills its socket's queue, and a
// sender on a unix datagram socket then blocks (log/syslog would wait
// forever): Append gives up after its timeout with an error that says so.
func TestSyslogStuckReceiver(t *testing.T) {
	sock, _, _ := listenSyslog(t, "unixgram") // never read
	l := Open(filepath.Join(t.TempDir(), "a.jsonl")).WithSyslog(sock)
	l.syslogTimeout = 200 * time.Millisecond
	start := time.Now()
	for i := 0; i < 1000; i++ {
		err := l.Append(Record{Operator: "op", Action: "push", Result: "ok"})
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "not taken within 200ms") {
			t.Fatalf("record %d: %v", i, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("gave up after %v", d)
		}
		return
	}
	t.Fatal("1000 records went to a socket nobody reads: the queue never filled")
}
