package pcmklab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// daemon is one real Pacemaker daemon running in a lab host's namespaces,
// started and reaped by the test process.
type daemon struct {
	host *sshlab.Host
	name string   // for messages
	argv []string // program and arguments inside the host
	env  []string
	logf string // its log file inside the host

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func (d *daemon) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cmd, err := d.host.Command(context.Background(), d.argv[0], d.argv[1:]...)
	if err != nil {
		return err
	}
	cmd.Env = append(os.Environ(), d.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s on %s: %w", d.name, d.host.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	d.cmd, d.exited = cmd, exited
	return nil
}

// running reports whether the daemon has not exited.
func (d *daemon) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// stop stops the daemon as its init system would: SIGTERM, then SIGKILL
// after 15 s. It returns when the process has exited.
func (d *daemon) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		d.cmd.Process.Kill()
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
		}
	}
	d.cmd = nil
}

// log returns the daemon's log so far.
func (d *daemon) log() string {
	out, err := d.host.Exec(context.Background(), `cat "$1" 2>&1`, d.logf)
	if err != nil {
		return fmt.Sprintf("(no log of %s on %s: %v: %s)", d.name, d.host.Name, err, out)
	}
	return out
}

// waitListening waits (bounded by timeout) until the daemon listens on
// port inside its host's network, and stops waiting the moment it exits.
func (d *daemon) waitListening(port int, timeout time.Duration) error {
	d.mu.Lock()
	exited := d.exited
	d.mu.Unlock()
	filter := fmt.Sprintf("( sport = :%d )", port)
	err := waitFor(timeout, 100*time.Millisecond, exited, func() bool {
		out, err := d.host.Exec(context.Background(), `ss -Htln "$1"`, filter)
		return err == nil && strings.Contains(out, ":"+strconv.Itoa(port))
	})
	switch {
	case errors.Is(err, errExited):
		return fmt.Errorf("%s on %s exited before listening on %d; its log:\n%s", d.name, d.host.Name, port, tail(d.log(), 30))
	case err != nil:
		return fmt.Errorf("%s on %s does not listen on %d after %v; its log:\n%s", d.name, d.host.Name, port, timeout, tail(d.log(), 30))
	}
	return nil
}

var (
	errExited  = errors.New("the process exited")
	errTimeout = errors.New("timed out")
)

// waitFor waits until cond holds (nil), the process behind exited ends
// (errExited; a nil channel never does) or timeout passes (errTimeout).
// What it waits for has no event of its own (a socket that listens, a
// connection that closes, a file another process fills), so cond is
// asked every interval; a process's exit ends the wait at once.
func waitFor(timeout, interval time.Duration, exited <-chan struct{}, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-exited:
			return errExited
		case <-deadline.C:
			if cond() {
				return nil
			}
			return errTimeout
		case <-tick.C:
		}
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Based is a stand-alone pacemaker-based 3.0.2 serving the remote CIB over
// TLS-PSK on Port of its lab host.
type Based struct {
	Host *sshlab.Host
	Port int
	// StartTime is how long the last start took until the TLS listener was up.
	StartTime time.Duration
	d         *daemon
}

// basedLog is based's log file inside the host.
const basedLog = "/var/log/pacemaker/pacemaker-based.log"

// StartBased writes an empty CIB with remote-tls-port=port (owned by
// hacluster, from the peer's own `cibadmin --empty`) on host, unless one is
// there, starts `pacemaker-based -s` on it and waits until its TLS listener
// is up. Write /etc/pacemaker/cib-credentials first: based reads it only at
// start. The daemon stops when the test ends.
func StartBased(t testing.TB, host *sshlab.Host, port int) *Based {
	t.Helper()
	Require(t)
	prepare(t, host)
	// remote-tls-port goes on the <cib> element; validate-with comes from
	// --empty (without it based rejects every request).
	out, err := host.Exec(t.Context(), `set -e
cib=/var/lib/pacemaker/cib/cib.xml
if [ ! -s $cib ]; then
	"$1" --empty > $cib.new
	sed -i "0,/<cib /s//<cib remote-tls-port=\"$2\" /" $cib.new
	grep -q "remote-tls-port=\"$2\"" $cib.new
	chown hacluster:haclient $cib.new
	chmod 0600 $cib.new
	mv $cib.new $cib
fi`, bin("cibadmin"), strconv.Itoa(port))
	if err != nil {
		t.Fatalf("write the CIB on %s: %v: %s", host.Name, err, out)
	}
	b := &Based{Host: host, Port: port, d: &daemon{
		host: host, name: "pacemaker-based " + Version,
		argv: []string{bin("pacemaker-based"), "-s"},
		env:  []string{"PCMK_logfile=" + basedLog, "PCMK_logfacility=none", "PCMK_debug=no"},
		logf: basedLog,
	}}
	t.Cleanup(b.Stop)
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	return b
}

// Start starts a stopped based and waits (up to 20 s) for its listener.
func (b *Based) Start() error {
	began := time.Now()
	if err := b.d.start(); err != nil {
		return err
	}
	if err := b.d.waitListening(b.Port, 20*time.Second); err != nil {
		b.d.stop()
		return err
	}
	b.StartTime = time.Since(began)
	return nil
}

// Stop stops based (SIGTERM, as systemd would); its sessions end with it.
func (b *Based) Stop() { b.d.stop() }

// Restart stops and starts based: it reads cib-credentials and
// remote-tls-port again.
func (b *Based) Restart() error {
	b.Stop()
	return b.Start()
}

// Running reports whether based has not exited.
func (b *Based) Running() bool { return b.d.running() }

// Log is based's log so far: the only place that tells a wrong key, an
// unknown identity and a wrong password apart.
func (b *Based) Log() string { return b.d.log() }

// WriteCIBCredentials writes /etc/pacemaker/cib-credentials on host as
// pcmkeys does (hacluster:haclient 0600, "identity:hex" lines, LF), for
// tests that set a node up by hand. The key is test material: it passes
// through a pipe, never argv.
func WriteCIBCredentials(t testing.TB, host *sshlab.Host, lines string) {
	t.Helper()
	writeFile(t, host, "/etc/pacemaker/cib-credentials", "hacluster:haclient", "0600", lines)
}

// writeFile writes content to path on host with the owner and mode, by a
// rename in the same directory.
func writeFile(t testing.TB, host *sshlab.Host, path, owner, mode, content string) {
	t.Helper()
	cmd, err := host.Command(t.Context(), "sh", "-c", `set -e
tmp=$(mktemp "$1.XXXXXX")
cat > "$tmp"
chown "$2" "$tmp"
chmod "$3" "$tmp"
mv -f "$tmp" "$1"`, "sh", path, owner, mode)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write %s on %s: %v: %s", path, host.Name, err, out)
	}
}

// KillSessions closes every established TCP session on host whose local
// port is port (`ss -K`, as pcmkeys's revocation does on a node) and
// returns ss's output.
func KillSessions(t testing.TB, host *sshlab.Host, port int) string {
	t.Helper()
	out, err := host.Exec(t.Context(), `ss -K "( sport = :$1 )"`, strconv.Itoa(port))
	if err != nil {
		t.Fatalf("ss -K on %s: %v: %s", host.Name, err, out)
	}
	return out
}
