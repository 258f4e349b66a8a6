package quickack

import (
	"io"
	"net"
	"syscall"
	"testing"
)

// quickAckOn reads TCP_QUICKACK from c's socket.
func quickAckOn(t *testing.T, c *net.TCPConn) bool {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	return v == 1
}

func TestWrapTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		buf := make([]byte, 4)
		for range 3 {
			s.Write([]byte("ping"))
			io.ReadFull(s, buf)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := Wrap(c)
	if _, same := w.(*net.TCPConn); same {
		t.Fatal("Wrap returned the TCP connection unwrapped")
	}
	// A dialogue: the kernel goes back to delayed ACKs once this side
	// answers soon after it reads (it takes the exchange to be
	// interactive).
	buf := make([]byte, 4)
	for range 3 {
		if _, err := io.ReadFull(w, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("read %q, %v through the wrapper", buf, err)
		}
		w.Write([]byte("pong"))
	}
	if _, err := w.Read(buf); err != io.EOF {
		t.Fatalf("read after the end: %v", err)
	}
	// Set again after each read, so it holds after the last one.
	if !quickAckOn(t, c.(*net.TCPConn)) {
		t.Error("TCP_QUICKACK is off after a read")
	}
}

func TestWrapOther(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Error("a connection that is not TCP was wrapped")
	}
}
