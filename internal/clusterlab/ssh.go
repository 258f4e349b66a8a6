package clusterlab

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// SSH into nodes works as in internal/sshlab's hosts with a network of
// their own: a listener on 127.0.0.1:Port (the machine's network) hands
// every connection, as stdin and stdout, to an `sshd -i` started inside the
// node's namespaces (nsenter into its init), so the session runs "on" the
// node: its files, its daemons, its crm_mon. While the node is off the
// port accepts and closes at once, as a dead host's would time out; after
// a reboot the same port and host key serve the new boot.

// sshdConfig is every node's sshd_config (root by key only).
const sshdConfig = `HostKey %s
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PrintMotd no
LogLevel ERROR
MaxSessions 64
`

// setupSSH writes the node's host key and sshd_config and opens its
// listener.
func (n *Node) setupSSH() error {
	key := filepath.Join(n.dir, "ssh_host_ed25519_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", n.Name, "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen for %s: %v: %s", n.Name, err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(sshdConfig, key, filepath.Join(n.lab.Dir, "authorized_keys"))
	if err := os.WriteFile(filepath.Join(n.dir, "sshd_config"), []byte(cfg), 0o644); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	n.Port = ln.Addr().(*net.TCPAddr).Port
	f := strings.Fields(string(pub))
	n.HostKeyLine = fmt.Sprintf("[127.0.0.1]:%d %s %s", n.Port, f[0], f[1])
	log, err := os.OpenFile(filepath.Join(n.dir, "sshd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		ln.Close()
		return err
	}
	n.fwd = &forwarder{node: n, ln: ln, log: log, procs: map[*os.Process]bool{}}
	n.fwd.wg.Add(1)
	go n.fwd.serve()
	return nil
}

// checkSSH reports whether the node's sshd answers with its banner.
func (n *Node) checkSSH() error {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	banner, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && !strings.HasPrefix(banner, "SSH-2.0-") {
		err = fmt.Errorf("banner %q", banner)
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(n.dir, "sshd.log"))
		return fmt.Errorf("sshd -i on %s: %v: %s", n.Name, err, strings.TrimSpace(string(log)))
	}
	return nil
}

type forwarder struct {
	node *Node
	ln   net.Listener
	log  *os.File

	mu     sync.Mutex
	closed bool
	procs  map[*os.Process]bool
	wg     sync.WaitGroup
}

func (f *forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
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

// session runs one sshd -i on c inside the node as it is now.
func (f *forwarder) session(c *net.TCPConn) {
	defer f.wg.Done()
	pid := f.node.PID()
	if pid == 0 {
		c.Close()
		return
	}
	file, err := c.File()
	c.Close()
	if err != nil {
		return
	}
	defer file.Close()
	argv := append(nsenterArgs(pid), "--", "/usr/sbin/sshd", "-i", "-e", "-f", filepath.Join(f.node.dir, "sshd_config"))
	cmd := exec.Command("nsenter", argv...)
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

// close stops accepting, kills the sshd -i it started and waits (bounded).
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
