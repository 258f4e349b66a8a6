package sshlab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// dial logs in to h as root the way pcmkeys does: by address and port,
// with the lab's known_hosts.
func dial(t *testing.T, l *Lab, h *Host) *ssh.Client {
	t.Helper()
	pem, err := os.ReadFile(l.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := knownhosts.New(l.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port)), &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh to %s: %v", h.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs one command in a session of its own and returns its combined output.
func run(t *testing.T, c *ssh.Client, cmd string) (string, error) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// background starts cmd in a session of its own; wait returns when it ends.
func background(t *testing.T, c *ssh.Client, cmd string) (wait <-chan error) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StdinPipe(); err != nil { // kept open: the command is not told EOF
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	s.Stdout, s.Stderr = out, out
	if err := s.Start(cmd); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := s.Wait()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out.String())
		}
		done <- err
	}()
	// The session's goroutine ends at the latest when the lab stops the
	// host or the client is closed (both cleanups run after this one).
	t.Cleanup(func() { s.Close() })
	return done
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// eventually retries check every 100ms for up to 10s.
func eventually(t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var ok bool
		if ok, last = check(); ok {
			return
		}
	}
	t.Fatalf("%s: not within 10s (last: %s)", what, last)
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if r := SkipReasonOwnNetwork(); r != "" {
		t.Skip(r)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs gnutls-bin and iproute2)", tool)
		}
	}
}

// A server on a host with its own network is reachable from the host only,
// and `ss -K` run on the host closes its established sessions: what
// pcmkeys's revocation does to live remote-CIB sessions.
func TestOwnNetwork(t *testing.T) {
	needTools(t, "ss", "gnutls-serv", "gnutls-cli")
	l := Start(t, 2, Options{OwnNetwork: true})
	h := l.Hosts[0]
	c := dial(t, l, h)

	if out, err := run(t, c, "hostname; ip -o link | cut -d: -f2"); err != nil || strings.Fields(out)[0] != h.Name || strings.Join(strings.Fields(out)[1:], ",") != "lo" {
		t.Fatalf("hostname and links on %s: %q %v", h.Name, out, err)
	}
	// A TLS-PSK echo server on 5403, a test key in the host's own namespace.
	const psk = "00112233445566778899aabbccddeeff"
	if out, err := run(t, c, "printf 'lab:"+psk+"\\n' > /root/psk && chmod 600 /root/psk"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	server := background(t, c, "exec gnutls-serv --echo --pskpasswd /root/psk --priority NORMAL:+PSK:+DHE-PSK -p 5403 >/dev/null 2>&1")
	listening := func(out string) bool { return strings.Contains(out, ":5403") }
	eventually(t, "gnutls-serv listens on the host", func() (bool, string) {
		out, _ := run(t, c, "ss -Htln '( sport = :5403 )'")
		return listening(out), out
	})

	// Not on the machine, nor on the other host.
	if out, err := exec.Command("ss", "-Htln", "( sport = :5403 )").CombinedOutput(); err != nil || listening(string(out)) {
		t.Errorf("port 5403 in the test's own network namespace: %q %v", out, err)
	}
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:5403", time.Second); err == nil {
		conn.Close()
		t.Errorf("127.0.0.1:5403 answers in the test's own network namespace")
	}
	if out, _ := run(t, dial(t, l, l.Hosts[1]), "ss -Htln '( sport = :5403 )'"); listening(out) {
		t.Errorf("port 5403 listens on %s too: %q", l.Hosts[1].Name, out)
	}
	// Exec enters the host's network too.
	if out, err := h.Exec(context.Background(), "ss -Htln '( sport = :5403 )'"); err != nil || !listening(out) {
		t.Errorf("Exec does not see the host's listener: %q %v", out, err)
	}

	// Another session on the host connects and stays connected.
	client := background(t, c, "exec gnutls-cli --priority NORMAL:+PSK:+DHE-PSK --pskusername lab --pskkey "+psk+" -p 5403 127.0.0.1")
	established := func() (bool, string) {
		out, _ := run(t, c, "ss -Htn state established '( dport = :5403 )'")
		return strings.Contains(out, ":5403"), out
	}
	eventually(t, "the client's session is established", established)
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-client:
		t.Fatalf("gnutls-cli ended before ss -K: %v", err)
	default:
	}

	// ss -K on the host closes it.
	if out, err := run(t, c, "ss -K '( sport = :5403 )'"); err != nil {
		t.Fatalf("ss -K: %v: %s", err, out)
	}
	select {
	case <-client:
	case <-time.After(10 * time.Second):
		t.Fatal("gnutls-cli still runs 10s after ss -K closed its connection")
	}
	if ok, out := established(); ok {
		t.Errorf("still established after ss -K: %q", out)
	}
	select {
	case err := <-server:
		t.Errorf("gnutls-serv ended with its client's connection: %v", err)
	default:
	}
}

// Stop closes the host's port and kills what runs in its namespaces; Restart
// brings it back, fresh, on the same port with the same host key.
func TestOwnNetworkStopRestart(t *testing.T) {
	needTools(t, "ss")
	l := Start(t, 1, Options{OwnNetwork: true})
	h := l.Hosts[0]
	c := dial(t, l, h)
	if out, err := run(t, c, "echo hello > /run/marker && ip addr add 10.250.9.1/32 dev lo && echo ok"); err != nil || out != "ok\n" {
		t.Fatalf("%q %v", out, err)
	}
	holder := h.PID()
	if holder == 0 {
		t.Fatal("PID of a running host is 0")
	}
	h.Stop()
	if h.PID() != 0 {
		t.Error("PID of a stopped host is not 0")
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(holder)); err == nil {
		t.Errorf("the namespace holder %d still runs after Stop", holder)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port)), time.Second); err == nil {
		conn.Close()
		t.Error("a stopped host's port accepts connections")
	}
	if _, err := h.Exec(context.Background(), "true"); err == nil {
		t.Error("Exec on a stopped host succeeded")
	}
	if err := h.Restart(); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, dial(t, l, h), "cat /run/marker 2>&1; ip -o addr show dev lo | grep -c 10.250.9.1")
	if err == nil || !strings.Contains(out, "No such file") || !strings.HasSuffix(out, "0\n") {
		t.Errorf("a restarted host kept its /run or its addresses: %q %v", out, err)
	}
}

// A test may stop a host from a goroutine of its own while it restarts it
// (the host fault "sshd dies mid-run"): under -race, for both kinds of host.
func TestStopRestartConcurrent(t *testing.T) {
	for _, own := range []bool{false, true} {
		t.Run("OwnNetwork="+strconv.FormatBool(own), func(t *testing.T) {
			if own {
				needTools(t)
			}
			l := Start(t, 1, Options{OwnNetwork: own})
			h := l.Hosts[0]
			var wg sync.WaitGroup
			for i := 0; i < 3; i++ {
				wg.Add(2)
				go func() { defer wg.Done(); time.Sleep(time.Duration(i) * 30 * time.Millisecond); h.Stop() }()
				go func() { defer wg.Done(); h.SetSlow(0); h.Restart(); h.Exec(context.Background(), "true") }()
			}
			wg.Wait()
			if err := h.Restart(); err != nil {
				t.Fatal(err)
			}
			if out, err := run(t, dial(t, l, h), "echo up"); err != nil || out != "up\n" {
				t.Fatalf("after concurrent stops and restarts: %q %v", out, err)
			}
		})
	}
}
