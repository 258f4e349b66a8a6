package pcmklab

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// RemotedPort is Pacemaker Remote's port.
const RemotedPort = 3121

// Remoted is pacemaker-remoted 3.0.2 on a lab host, serving Pacemaker
// Remote's TLS-PSK (identity "lrmd") on port 3121 with the key it read from
// /etc/pacemaker/authkey when it started.
type Remoted struct {
	Host *sshlab.Host
	// StartTime is how long the last start took until it listened.
	StartTime time.Duration
	d         *daemon
}

// remotedLog is remoted's log file inside the host.
const remotedLog = "/var/log/pacemaker/pacemaker-remoted.log"

// StartRemoted starts pacemaker-remoted 3.0.2 on host and waits until it
// listens on 3121. Put /etc/pacemaker/authkey there first: remoted reads
// it once, at start. Not on a host that runs based too (their IPC sockets
// collide). It stops when the test ends.
func StartRemoted(t testing.TB, host *sshlab.Host) *Remoted {
	t.Helper()
	Require(t)
	prepare(t, host)
	r := &Remoted{Host: host, d: &daemon{
		host: host, name: "pacemaker-remoted " + Version,
		argv: []string{bin("pacemaker-remoted")},
		env:  []string{"PCMK_logfile=" + remotedLog, "PCMK_logfacility=none", "PCMK_debug=no"},
		logf: remotedLog,
	}}
	t.Cleanup(r.Stop)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// Start starts a stopped remoted and waits (up to 20 s) until it listens.
func (r *Remoted) Start() error {
	began := time.Now()
	if err := r.d.start(); err != nil {
		return err
	}
	if err := r.d.waitListening(RemotedPort, 20*time.Second); err != nil {
		r.d.stop()
		return err
	}
	r.StartTime = time.Since(began)
	return nil
}

// Stop stops remoted (SIGTERM).
func (r *Remoted) Stop() { r.d.stop() }

// Restart stops and starts remoted: only then does it read the authkey
// again.
func (r *Remoted) Restart() error {
	r.Stop()
	return r.Start()
}

// Running reports whether remoted has not exited.
func (r *Remoted) Running() bool { return r.d.running() }

// Log is remoted's log so far ("TLS handshake with remote client failed"
// after a wrong key).
func (r *Remoted) Log() string { return r.d.log() }

// Handshake reports whether remoted accepts key (the authkey's bytes, as
// hex) as the PSK of identity "lrmd": gnutls-cli, in the host's network,
// completes the TLS handshake. The key is test material in a process of
// the test's own lab host.
func (r *Remoted) Handshake(t testing.TB, keyHex string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := r.Host.Exec(ctx, `exec gnutls-cli --priority NORMAL:+DHE-PSK:+PSK --pskusername lrmd --pskkey "$1" -p "$2" 127.0.0.1 </dev/null 2>&1`,
		keyHex, fmt.Sprint(RemotedPort))
	if strings.Contains(out, "Handshake was completed") {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("no handshake")
	}
	return fmt.Errorf("TLS-PSK handshake with pacemaker-remoted on %s: %v: %s", r.Host.Name, err, tail(out, 5))
}
