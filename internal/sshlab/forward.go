package sshlab

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// forwarder is a host's door when it has a network of its own: it listens
// on 127.0.0.1:Port in the machine's network namespace and hands every
// connection it accepts, as stdin and stdout, to an `sshd -i` started
// inside the host's namespaces. The TCP connection stays a socket of the
// machine's namespace; everything the session starts lives in the host's.
type forwarder struct {
	ln   net.Listener
	argv []string // nsenter … sshd -i …
	log  *os.File // the host's sshd.log (append)

	mu     sync.Mutex
	closed bool
	procs  map[*os.Process]bool // running sshd -i
	wg     sync.WaitGroup       // the accept loop and every session
}

// forward opens the host's forwarder; h.mu is held and the namespace
// holder is ready.
func (h *Host) forward() error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port)))
	if err != nil {
		return fmt.Errorf("listen for %s: %w", h.Name, err)
	}
	log, err := os.OpenFile(filepath.Join(h.dir, "sshd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		ln.Close()
		return err
	}
	argv := append([]string{"nsenter"}, h.nsenterArgs(h.cmd.Process.Pid)...)
	argv = append(argv, "--", "/usr/sbin/sshd", "-i", "-e", "-f", filepath.Join(h.dir, "sshd_config"))
	f := &forwarder{ln: ln, argv: argv, log: log, procs: map[*os.Process]bool{}}
	f.wg.Add(1)
	go f.serve()
	h.fwd = f
	// The host is up when its sshd answers with its banner.
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
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
		log, _ := os.ReadFile(filepath.Join(h.dir, "sshd.log"))
		return fmt.Errorf("sshd -i of %s: %v: %s", h.Name, err, strings.TrimSpace(string(log)))
	}
	return nil
}

func (f *forwarder) serve() {
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
func (f *forwarder) session(c *net.TCPConn) {
	defer f.wg.Done()
	file, err := c.File() // a blocking duplicate for the child
	c.Close()
	if err != nil {
		return
	}
	defer file.Close()
	cmd := exec.Command(f.argv[0], f.argv[1:]...)
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

// close stops accepting, kills every sshd -i it started and waits (bounded)
// for its goroutines.
func (f *forwarder) close() {
	f.mu.Lock()
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
	case <-time.After(10 * time.Second):
	}
	f.log.Close()
}
