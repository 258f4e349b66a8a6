// Package sshfwd is the door of a test host that lives in namespaces of
// its own (internal/sshlab's hosts with a network of their own,
// internal/clusterlab's nodes): a listener on the machine's loopback that
// hands every connection it accepts, as stdin and stdout, to an `sshd -i`
// started inside the host's namespaces (nsenter). The TCP connection stays
// a socket of the machine's network; everything the session starts lives
// in the host's.
package sshfwd

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// closeWait bounds how long Close waits for the sessions it killed.
const closeWait = 10 * time.Second

// Forwarder serves one listener. Its methods are safe for concurrent use.
type Forwarder struct {
	ln   net.Listener
	argv func() []string
	log  *os.File

	mu     sync.Mutex
	closed bool
	procs  map[*os.Process]bool // running sshd -i
	wg     sync.WaitGroup       // the accept loop and every session
}

// Start serves ln until Close. For every connection it runs the command
// argv returns at that moment (nsenter … -- sshd -i …), with the
// connection as stdin and stdout and log (appended to) as stderr; when
// argv returns nil (the host is down) the connection is closed at once,
// as a dead host's would go unanswered. The forwarder owns ln and log.
func Start(ln net.Listener, log *os.File, argv func() []string) *Forwarder {
	f := &Forwarder{ln: ln, argv: argv, log: log, procs: map[*os.Process]bool{}}
	f.wg.Add(1)
	go f.serve()
	return f
}

// Port is the port the forwarder listens on.
func (f *Forwarder) Port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *Forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			c.Close()
			return
		}
		f.wg.Add(1)
		f.mu.Unlock()
		go f.session(c.(*net.TCPConn))
	}
}

// session runs one sshd -i on connection c until it exits.
func (f *Forwarder) session(c *net.TCPConn) {
	defer f.wg.Done()
	argv := f.argv()
	if len(argv) == 0 {
		c.Close()
		return
	}
	file, err := c.File() // a blocking duplicate for the child
	c.Close()
	if err != nil {
		return
	}
	defer file.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = file, file, f.log
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	err = cmd.Start()
	if err == nil {
		f.procs[cmd.Process] = true
	}
	f.mu.Unlock()
	if err != nil {
		return
	}
	file.Close()
	cmd.Wait()
	f.mu.Lock()
	delete(f.procs, cmd.Process)
	f.mu.Unlock()
}

// Close stops accepting, kills every sshd -i it started, waits for them
// (at most closeWait) and closes the log. Closing again does nothing.
func (f *Forwarder) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.ln.Close()
	for p := range f.procs {
		p.Kill()
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeWait):
	}
	f.log.Close()
}

// CheckBanner reports whether the sshd behind addr answers with an SSH
// banner; on failure the error holds name and what logPath (the sshd's
// log) says.
func CheckBanner(addr, name, logPath string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var banner string
		banner, err = bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err == nil && !strings.HasPrefix(banner, "SSH-2.0-") {
			err = fmt.Errorf("banner %q", banner)
		}
	}
	if err != nil {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("sshd -i of %s: %v: %s", name, err, strings.TrimSpace(string(log)))
	}
	return nil
}
