package sshlab

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// A lab started in a network namespace of its own (Options.Netns) listens
// there only, on its Address, with host keys known under that address;
// at LogLevel VERBOSE each host's log names every session.
func TestNetns(t *testing.T) {
	if r := SkipReasonOwnNetwork(); r != "" {
		t.Skip(r)
	}
	holder := exec.Command("unshare", "--net", "sh", "-c", "ip link set lo up && exec sleep infinity")
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	netns := fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	self, _ := os.Readlink("/proc/self/ns/net")
	eventually(t, "the namespace holder unshares", func() (bool, string) {
		ns, err := os.Readlink(netns)
		return err == nil && ns != self, ns
	})
	// The holder's lo must be up before sshd binds.
	eventually(t, "lo up in the namespace", func() (bool, string) {
		return loUp(netns), ""
	})

	l := Start(t, 2, Options{Netns: netns, Address: "127.0.0.1", LogLevel: "VERBOSE"})
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
	for _, h := range l.Hosts {
		addr := net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
		if want := fmt.Sprintf("[%s]:%d ", h.Address, h.Port); !strings.HasPrefix(h.HostKeyLine, want) {
			t.Errorf("%s: known_hosts line %q, want it for %s", h.Name, h.HostKeyLine, want)
		}
		// Not on the machine's loopback (nothing, or someone else's server
		// that does not know our key).
		if c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk, Timeout: 2 * time.Second}); err == nil {
			c.Close()
			t.Errorf("%s answers on the machine's network at %s", h.Name, addr)
		}
		var out []byte
		err := InNetns(netns, func() error {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return err
			}
			cc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk})
			if err != nil {
				conn.Close()
				return err
			}
			c := ssh.NewClient(cc, chans, reqs)
			defer c.Close()
			s, err := c.NewSession()
			if err != nil {
				return err
			}
			defer s.Close()
			out, err = s.CombinedOutput("echo hello from $(id -un)")
			return err
		})
		if err != nil || strings.TrimSpace(string(out)) != "hello from root" {
			t.Fatalf("%s inside the namespace: %q, %v", h.Name, out, err)
		}
		eventually(t, h.Name+" logs the session", func() (bool, string) {
			log, _ := h.Log()
			return strings.Contains(log, "Starting session: command for root"), log
		})
	}
}

func loUp(netns string) bool {
	out, err := exec.Command("nsenter", "--net="+netns, "--", "ip", "-o", "link", "show", "lo").CombinedOutput()
	return err == nil && strings.Contains(string(out), "UP")
}
