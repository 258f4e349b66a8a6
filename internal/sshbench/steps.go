package main

import (
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// step is one part of a login and a command, timed.
type step struct {
	name string
	took time.Duration
}

// goSteps times, with Go's SSH client as pcmkeys uses it, each part of
// logging in to h and running commands, from the client's namespace: the
// TCP handshake; version exchange and key exchange up to the server's
// host key (the client checks it then); NEWKEYS and the service request
// up to the start of authentication; authentication (Go asks whether the
// key is acceptable before it signs); a session's channel; an exec to its
// exit status; then a second session and exec on the same connection.
// wrap, if set, wraps the TCP connection (pcmkeys's quickack.Wrap).
func goSteps(e *env, h *sshlab.Host, wrap func(net.Conn) net.Conn) ([]step, error) {
	pem, err := os.ReadFile(e.lab.IdentityFile)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, err
	}
	hk, err := knownhosts.New(e.lab.KnownHosts)
	if err != nil {
		return nil, err
	}
	var steps []step
	err = sshlab.InNetns(e.link.ClientNetns, func() error {
		addr := net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
		var hostKeyAt, authAt time.Time
		cfg := &ssh.ClientConfig{
			User: "root",
			Auth: []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
				authAt = time.Now()
				return []ssh.Signer{signer}, nil
			})},
			HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
				hostKeyAt = time.Now()
				return hk(host, remote, key)
			},
		}
		t0 := time.Now()
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		t1 := time.Now()
		if wrap != nil {
			conn = wrap(conn)
		}
		cc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
		if err != nil {
			conn.Close()
			return err
		}
		t2 := time.Now()
		c := ssh.NewClient(cc, chans, reqs)
		defer c.Close()
		steps = append(steps, step{"TCP handshake", t1.Sub(t0)},
			step{"SSH version and key exchange (to the host key)", hostKeyAt.Sub(t1)},
			step{"NEWKEYS, service request", authAt.Sub(hostKeyAt)},
			step{"public-key authentication", t2.Sub(authAt)})
		for _, name := range []string{"first", "second"} {
			t3 := time.Now()
			s, err := c.NewSession()
			if err != nil {
				return err
			}
			t4 := time.Now()
			err = s.Run("true")
			t5 := time.Now()
			s.Close()
			if err != nil {
				return err
			}
			steps = append(steps, step{name + " session: open the channel", t4.Sub(t3)},
				step{name + " session: exec to exit status", t5.Sub(t4)})
		}
		return nil
	})
	return steps, err
}
