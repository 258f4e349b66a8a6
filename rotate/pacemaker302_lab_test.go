package rotate

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/pcmklab"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// These tests judge pcmkeys by the real Pacemaker 3.0.2 (internal/pcmklab):
// a stand-alone pacemaker-based serving the remote CIB over TLS-PSK on
// host00, and the admins' own cibadmin and crm_mon, run as alice and bob
// with the env files pcmkeys wrote for them. What users rely on: after a
// revoke or a CIB rotation, the old key no longer opens the CIB, a session
// it opened is gone, the admins who keep access get in with the key
// pcmkeys gave them, and the cluster's based keeps running throughout.

// p302Port is the remote-tls-port based listens on, and the config's cib.port.
const p302Port = 7402

// p302Lab is two nodes, host00 and host01, each in a network namespace of
// its own with the peer visible. Only host00 runs based; the admins'
// clients are on host00 itself (a client must share based's network
// namespace: cibadmin reaches 127.0.0.1 there).
type p302Lab struct {
	lab   *sshlab.Lab
	e     *Env
	node  *sshlab.Host
	based *pcmklab.Based
}

// newP302Lab inits the cluster (shared mode), onboards alice and bob on
// host00, and starts based after init wrote cib-credentials (based reads
// the file's owner and mode only at start). The admins' env files alone
// must be enough: pcmkeys manages hacluster's password.
func newP302Lab(t *testing.T, store string) *p302Lab {
	t.Helper()
	requireGnuTLS(t)
	lab := pcmklab.StartLab(t, 2, sshlab.Options{})
	dir := t.TempDir()
	e := labDoc{store: store, commandTimeout: "20s", cibPort: p302Port, audit: true, nodes: []int{0, 1}}.env(t, lab, dir)
	ctx := context.Background()
	if _, err := Init(ctx, e); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		// A node may be a client too: the admin works on host00.
		if _, err := Onboard(ctx, e, OnboardRequest{User: u, Clients: []string{"host00"}}); err != nil {
			t.Fatal(err)
		}
	}
	l := &p302Lab{lab: lab, e: e, node: lab.Hosts[0]}
	// No password is set by hand: pcmkeys set hacluster's on the nodes
	// (init) and gave it to each admin, whose env file reads it.
	l.based = pcmklab.StartBased(t, l.node, p302Port)
	t.Logf("pacemaker-based %s listens %v after start", pcmklab.Version, l.based.StartTime.Round(10*time.Millisecond))
	return l
}

func p302Env(user string) string { return "/home/" + user + "/.pcmkeys/lab.env" }

// log is the end of based's log: the only place that tells a wrong key
// from a failed login.
func (l *p302Lab) log() string {
	lines := strings.Split(strings.TrimSpace(l.based.Log()), "\n")
	return strings.Join(lines[max(0, len(lines)-12):], "\n")
}

// cib runs the real `cibadmin -Q` as user with envFile: nil means the key
// passed the TLS-PSK handshake and the CIB came back.
func (l *p302Lab) cib(t *testing.T, user, envFile string) error {
	t.Helper()
	out, err := pcmklab.Cibadmin(t, l.node, user, envFile)
	if err == nil && !strings.Contains(out, "<cib ") {
		err = errors.New("no CIB in the output")
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(out))
	}
	return nil
}

// keepOldKey copies user's key file and env file, on host00 and as theirs
// (a client refuses a key file it does not own, mode 0600), to
// /run/pcmklab, the env file pointing at the copy, and returns the copied
// env file: the old key stays usable after pcmkeys replaced or deleted the
// original.
func (l *p302Lab) keepOldKey(t *testing.T, user string) string {
	t.Helper()
	out, err := l.node.Exec(context.Background(), `set -e
d=/run/pcmklab; mkdir -p -m 0755 $d
install -o "$1" -g "$1" -m 0600 "/home/$1/.pcmkeys/lab.key" $d/$1-old.key
sed "s|^export CIB_key_file=.*|export CIB_key_file='$d/$1-old.key'|" "/home/$1/.pcmkeys/lab.env" > $d/$1-old.env
chown "$1:$1" $d/$1-old.env; chmod 0600 $d/$1-old.env
grep -q "$1-old.key" $d/$1-old.env`, user)
	if err != nil {
		t.Fatalf("keep %s's old key: %v: %s", user, err, out)
	}
	return "/run/pcmklab/" + user + "-old.env"
}

var p302PID = regexp.MustCompile(`pid=(\d+),`)

// listener is the pid of the process listening on the remote-tls-port of
// host00 (its own network: only its based).
func (l *p302Lab) listener(t *testing.T) string {
	t.Helper()
	out, err := l.node.Exec(context.Background(), `ss -Htlnp "( sport = :$1 )"`, fmt.Sprint(p302Port))
	m := p302PID.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("no listener on %d on host00: %v: %s", p302Port, err, out)
	}
	return m[1]
}

// p302Case is one workflow that must end the old key's access on a
// running based: the admins whose current key files must work after it,
// and those whose files must be gone.
type p302Case struct {
	name    string
	run     func(ctx context.Context, e *Env) (*Report, error)
	working []string
	gone    []string
}

// p302Check: alice holds a crm_mon session and a copy of her key; after
// the workflow, pcmkeys's report says it closed the session on host00, the
// session is gone, based refuses the old key in the TLS handshake (rc 76
// and a handshake failure in its log: neither the client refusing the key
// file, rc 4, nor a failed login), the working admins' new keys reach the
// CIB and based is the same process.
func p302Check(t *testing.T, store string, c p302Case) {
	l := newP302Lab(t, store)
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if err := l.cib(t, u, p302Env(u)); err != nil {
			t.Fatalf("%s's onboarded key file: %v\nbased's log:\n%s", u, err, l.log())
		}
	}
	old := l.keepOldKey(t, "alice")
	if err := l.cib(t, "alice", old); err != nil {
		t.Fatalf("the copy of alice's key before %s: %v", c.name, err)
	}
	pid := l.listener(t)
	s := pcmklab.HoldSession(t, l.node, "alice", p302Env("alice"))

	began := time.Now()
	rep, err := c.run(ctx, l.e)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	t.Logf("%s took %v", c.name, time.Since(began).Round(time.Millisecond))

	want := map[string]SessionAction{"host00": SessionsClosed, "host01": SessionsNone}
	for _, h := range rep.Hosts {
		if w, ok := want[h.Host]; ok && h.Sessions != nil {
			if ss := *h.Sessions; ss.Action != w || ss.Remaining != 0 || ss.Port != p302Port || (w == SessionsClosed) != (ss.Closed > 0) {
				t.Errorf("%s: sessions %+v, want %q", h.Host, ss, w)
			}
			delete(want, h.Host)
		}
	}
	if len(want) > 0 {
		t.Errorf("the report has no sessions step for %v: %+v", want, rep.Hosts)
	}
	if !s.WaitDisconnected(5 * time.Second) {
		t.Errorf("alice's crm_mon session is still established after %s", c.name)
	}

	// A wrong key and a failed login both give the client rc 76; only
	// based's log says the handshake itself failed.
	const refused = "TLS handshake with remote client failed"
	before := strings.Count(l.based.Log(), refused)
	err = l.cib(t, "alice", old)
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Errorf("based still accepts alice's old key after %s", c.name)
	case !errors.As(err, &ee) || ee.ExitCode() != 76 || strings.Count(l.based.Log(), refused) == before:
		t.Errorf("alice's old key: want the TLS handshake refused (rc 76), got %v\nbased's log:\n%s", err, l.log())
	}
	for _, u := range c.working {
		if err := l.cib(t, u, p302Env(u)); err != nil {
			t.Errorf("%s's key file after %s: %v\nbased's log:\n%s", u, c.name, err, l.log())
		}
	}
	for _, u := range c.gone {
		out, _ := l.node.Exec(ctx, `ls -A "/home/$1/.pcmkeys" 2>/dev/null`, u)
		if strings.TrimSpace(out) != "" {
			t.Errorf("%s's files are still on host00: %s", u, out)
		}
	}
	if !l.based.Running() || l.listener(t) != pid {
		t.Errorf("pacemaker-based was restarted or stopped by %s (listener pid was %s)", c.name, pid)
	}
}

// TestPacemaker302RevokeClosesSession: revoking alice (shared mode) cuts
// her out of a running based at once — her open session is closed, her
// old key is refused, her files are gone — while bob, with the new shared
// key pcmkeys gave him, gets in without based being restarted.
func TestPacemaker302RevokeClosesSession(t *testing.T) {
	if r := pcmklab.SkipReason(); r != "" {
		t.Skip(r)
	}
	forEachStore(t, func(t *testing.T, store string) {
		p302Check(t, store, p302Case{
			name: "revoke alice",
			run: func(ctx context.Context, e *Env) (*Report, error) {
				return Revoke(ctx, e, []string{"alice"})
			},
			working: []string{"bob"},
			gone:    []string{"alice"},
		})
	})
}

// TestPacemaker302RotateKeepsBasedRunning: `rotate --cib` on a running
// based needs no restart: the new shared key works for alice and bob on
// their next connection, the old key is refused, and a session the old key
// opened is closed by the rotation.
func TestPacemaker302RotateKeepsBasedRunning(t *testing.T) {
	if r := pcmklab.SkipReason(); r != "" {
		t.Skip(r)
	}
	forEachStore(t, func(t *testing.T, store string) {
		p302Check(t, store, p302Case{
			name: "rotate --cib",
			run: func(ctx context.Context, e *Env) (*Report, error) {
				return Rotate(ctx, e, Request{CIB: true})
			},
			working: []string{"alice", "bob"},
		})
	})
}
