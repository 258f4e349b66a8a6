package sshfwd

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func start(t *testing.T, argv func() []string) (*Forwarder, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "sshd.log")
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f := Start(ln, log, argv)
	t.Cleanup(f.Close)
	return f, logPath
}

// TestForwarder: each connection gets the command argv names at that
// moment, with the connection as its stdin and stdout and the log as its
// stderr; while argv says the host is down, a connection is closed at
// once; Close ends running sessions.
func TestForwarder(t *testing.T) {
	var down atomic.Bool
	f, logPath := start(t, func() []string {
		if down.Load() {
			return nil
		}
		return []string{"sh", "-c", "echo SSH-2.0-fake; echo to the log >&2; exec cat"}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(f.Port()))
	if err := CheckBanner(addr, "host00", logPath); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("SSH-2.0-fake\nping\n"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "SSH-2.0-fake\nping\n" {
		t.Fatalf("echo through the forwarder: %q %v", buf, err)
	}
	if log, _ := os.ReadFile(logPath); !strings.Contains(string(log), "to the log") {
		t.Errorf("stderr did not reach the log: %q", log)
	}
	down.Store(true)
	err = CheckBanner(addr, "host00", logPath)
	if err == nil || !strings.Contains(err.Error(), "sshd -i of host00") || !strings.Contains(err.Error(), "to the log") {
		t.Errorf("banner of a host that is down: %v", err)
	}
	f.Close() // kills the cat still serving c
	if n, err := c.Read(buf); err == nil {
		t.Errorf("session still open after Close: read %q", buf[:n])
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting after Close")
	}
}
