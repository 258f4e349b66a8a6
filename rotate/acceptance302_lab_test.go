package rotate

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/pcmklab"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// TestAcceptance302 is issue 10's acceptance scenario, judged by the real
// Pacemaker 3.0.2 (internal/pcmklab) on a cluster of two full nodes, each
// running its own pacemaker-based with the remote CIB over TLS-PSK, and a
// Pacemaker Remote node running pacemaker-remoted. What users rely on:
//   - after onboard, an admin's env file alone is enough: `. ~/.pcmkeys/lab.env;
//     cibadmin -Q` works on every node, with no password passed by hand;
//   - `rotate --cib` ends the old shared key on every node and the new one
//     works, without restarting pacemaker-based;
//   - revoke cuts the admin out on every node while the others keep access;
//   - an authkey rotation does not reach a running 3.0.2 remoted (it keeps
//     the key it read at start) until it restarts; then only the new works.
func TestAcceptance302(t *testing.T) {
	if r := pcmklab.SkipReason(); r != "" {
		t.Skip(r)
	}
	forEachStore(t, func(t *testing.T, store string) {
		began := time.Now()
		acceptance302(t, store)
		t.Logf("%s store: the scenario (lab start included) took %v", store, time.Since(began).Round(time.Millisecond))
	})
}

// acc302Port is the remote-tls-port of both nodes' based (each in its own
// network) and the config's cib.port.
const acc302Port = 7403

// acc302 is the cluster: host00 and host01 are full nodes with based on
// each (and the admins' clients on each: a client shares its node's
// network, where the env file's CIB_server 127.0.0.1 is that node's
// based); host02 is the remote node with remoted (not beside a based:
// their IPC would collide).
type acc302 struct {
	e       *Env
	nodes   []*sshlab.Host
	based   []*pcmklab.Based
	remote  *sshlab.Host
	remoted *pcmklab.Remoted
}

func acceptance302(t *testing.T, store string) {
	requireGnuTLS(t)
	ctx := context.Background()
	lab := pcmklab.StartLab(t, 3, sshlab.Options{})
	dir := t.TempDir()
	// cib.server is left to its default: the first node's address.
	e := labDoc{store: store, commandTimeout: "20s", cibPort: acc302Port, audit: true, nodes: []int{0, 1}, remotes: []int{2}}.env(t, lab, dir)
	c := &acc302{e: e, nodes: lab.Hosts[:2], remote: lab.Hosts[2]}
	// fact logs what a step showed, unless an assertion of it failed.
	fact := func(format string, args ...any) {
		t.Helper()
		if !t.Failed() {
			t.Logf(format, args...)
		}
	}

	// init writes cib-credentials and the authkey and sets hacluster's
	// password on the full nodes; onboard gives each admin their key,
	// password and env file on both nodes. Nothing is set by hand.
	if _, err := Init(ctx, e); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := Onboard(ctx, e, OnboardRequest{User: u, Clients: []string{"host00", "host01"}}); err != nil {
			t.Fatalf("onboard %s: %v", u, err)
		}
	}
	// The daemons start after init: based checks cib-credentials and
	// remoted reads the authkey only at start.
	for _, n := range c.nodes {
		b := pcmklab.StartBased(t, n, acc302Port)
		c.based = append(c.based, b)
		t.Logf("pacemaker-based %s on %s listens %v after start", pcmklab.Version, n.Name, b.StartTime.Round(10*time.Millisecond))
	}
	c.remoted = pcmklab.StartRemoted(t, c.remote)
	// pcmkeys asks a node its version (pacemakerd, else pacemaker-remoted,
	// on PATH); this machine's PATH has Debian's 2.1.5 remoted, so each host
	// gets the 3.0.2 it runs in its own /usr/local/sbin, as a real one has.
	for _, n := range c.nodes {
		acc302Version(t, n, "pacemakerd")
	}
	acc302Version(t, c.remote, "pacemaker-remoted")

	// 1. Onboarded: the env file alone opens the CIB on every node.
	pids := make([]string, len(c.nodes))
	for i := range c.nodes {
		for _, u := range []string{"alice", "bob"} {
			if err := c.cib(t, i, u, p302Env(u)); err != nil {
				t.Fatalf("%s's env file alone on %s after onboard: %v\nbased's log:\n%s", u, c.nodes[i].Name, err, c.log(i))
			}
		}
		pids[i] = c.listener(t, i)
	}
	t.Logf("onboarded: alice's and bob's cibadmin -Q work on host00 and host01 from their env files alone")

	// 2. rotate --cib: the old shared key is refused everywhere, the new
	// one works for both admins, and based was not restarted.
	old := c.keepKey(t, "alice", "before-rotate")
	rep, err := Rotate(ctx, e, Request{CIB: true})
	if err != nil {
		t.Fatalf("rotate --cib: %v (%+v)", err, rep)
	}
	for i := range c.nodes {
		c.refused(t, i, old, "alice's key from before rotate --cib")
		for _, u := range []string{"alice", "bob"} {
			if err := c.cib(t, i, u, p302Env(u)); err != nil {
				t.Errorf("%s's env file on %s after rotate --cib: %v\nbased's log:\n%s", u, c.nodes[i].Name, err, c.log(i))
			}
		}
		c.sameBased(t, i, pids[i], "rotate --cib")
	}
	fact("rotate --cib: the old key is refused in the TLS handshake on both nodes, the new one works, based kept pids %v", pids)

	// 3. revoke alice: the key she held is refused on every node, her
	// files are gone, bob's (rotated) key works.
	held := c.keepKey(t, "alice", "before-revoke")
	if rep, err := Revoke(ctx, e, []string{"alice"}); err != nil {
		t.Fatalf("revoke alice: %v (%+v)", err, rep)
	}
	for i, n := range c.nodes {
		c.refused(t, i, held, "alice's key after revoke")
		if out, _ := n.Exec(ctx, `ls -A /home/alice/.pcmkeys 2>/dev/null`); strings.TrimSpace(out) != "" {
			t.Errorf("alice's files are still on %s after revoke: %s", n.Name, out)
		}
		if err := c.cib(t, i, "bob", p302Env("bob")); err != nil {
			t.Errorf("bob's env file on %s after revoking alice: %v\nbased's log:\n%s", n.Name, err, c.log(i))
		}
		c.sameBased(t, i, pids[i], "revoke")
	}
	fact("revoke alice: her key is refused on both nodes, her files are gone, bob still works, based kept pids %v", pids)

	// 4. authkey: the running 3.0.2 remoted keeps the key it read at start
	// until it restarts; after the restart only the new key works.
	oldKey := c.authkey(t)
	if err := c.remoted.Handshake(t, oldKey); err != nil {
		t.Fatalf("remoted refuses init's authkey: %v", err)
	}
	rep, err = Rotate(ctx, e, Request{Authkey: true})
	if err != nil {
		t.Fatalf("rotate --authkey: %v (%+v)", err, rep)
	}
	newKey := c.authkey(t)
	if newKey == oldKey {
		t.Fatal("rotate --authkey stored the same key")
	}
	if got := c.authkeyFile(t); got != newKey {
		t.Errorf("%s's /etc/pacemaker/authkey does not hold the store's new key after rotate --authkey", c.remote.Name)
	}
	// The report must tell the operator that every 3.0.2 node still needs
	// a restart (no --restart here: the lab restarts remoted itself).
	for _, s := range rep.Restart {
		t.Logf("rotate --authkey restart plan: %s: %s: %s", s.Host, s.Version, s.Text())
		if s.Version != "Pacemaker "+pcmklab.Version || !s.Needed || s.State != RestartNeeded {
			t.Errorf("rotate --authkey on %s: restart plan %+v, want a needed restart for %s", s.Host, s, pcmklab.Version)
		}
	}
	if len(rep.Restart) != 3 {
		t.Errorf("rotate --authkey: restart plan for %d hosts, want 3 (host00, host01, host02)", len(rep.Restart))
	}
	errOld, errNew := c.remoted.Handshake(t, oldKey), c.remoted.Handshake(t, newKey)
	if errOld != nil {
		t.Errorf("the running remoted %s no longer accepts the old authkey after rotate (3.0.2 keeps it until restart): %v", pcmklab.Version, errOld)
	}
	if errNew == nil {
		t.Errorf("the running remoted %s already accepts the new authkey before its restart", pcmklab.Version)
	}
	t.Logf("after rotate --authkey, before restart: old key accepted=%v, new key accepted=%v (file holds the new key)", errOld == nil, errNew == nil)
	if err := c.remoted.Restart(); err != nil {
		t.Fatalf("restart remoted: %v", err)
	}
	errOld, errNew = c.remoted.Handshake(t, oldKey), c.remoted.Handshake(t, newKey)
	if errNew != nil {
		t.Errorf("the restarted remoted refuses the new authkey: %v\nits log:\n%s", errNew, c.remoted.Log())
	}
	if errOld == nil {
		t.Errorf("the restarted remoted still accepts the old authkey")
	}
	t.Logf("after restarting remoted (%v until listening): old key accepted=%v, new key accepted=%v",
		c.remoted.StartTime.Round(10*time.Millisecond), errOld == nil, errNew == nil)
}

// cib runs the real `cibadmin -Q` on node i as user with envFile: nil
// means the handshake and the PAM login passed and the CIB came back.
func (c *acc302) cib(t *testing.T, i int, user, envFile string) error {
	t.Helper()
	out, err := pcmklab.Cibadmin(t, c.nodes[i], user, envFile)
	if err == nil && !strings.Contains(out, "<cib ") {
		err = errors.New("no CIB in the output")
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(out))
	}
	return nil
}

// log is the end of node i's based log.
func (c *acc302) log(i int) string {
	lines := strings.Split(strings.TrimSpace(c.based[i].Log()), "\n")
	return strings.Join(lines[max(0, len(lines)-12):], "\n")
}

// keepKey copies user's key and env file on every node to /run/pcmklab
// (as theirs, 0600: a client refuses a key file it does not own), the env
// file pointing at the copy, checks that the copy opens the CIB, and
// returns the copied env file: the key stays usable after pcmkeys replaced
// or deleted the original.
func (c *acc302) keepKey(t *testing.T, user, tag string) string {
	t.Helper()
	env := "/run/pcmklab/" + user + "-" + tag + ".env"
	for i, n := range c.nodes {
		out, err := n.Exec(context.Background(), `set -e
d=/run/pcmklab; mkdir -p -m 0755 $d
install -o "$1" -g "$1" -m 0600 "/home/$1/.pcmkeys/lab.key" "$d/$1-$2.key"
sed "s|^export CIB_key_file=.*|export CIB_key_file='$d/$1-$2.key'|" "/home/$1/.pcmkeys/lab.env" > "$d/$1-$2.env"
chown "$1:$1" "$d/$1-$2.env"; chmod 0600 "$d/$1-$2.env"
grep -q "$1-$2.key" "$d/$1-$2.env"`, user, tag)
		if err != nil {
			t.Fatalf("keep %s's key on %s: %v: %s", user, n.Name, err, out)
		}
		if err := c.cib(t, i, user, env); err != nil {
			t.Fatalf("the copy of %s's key (%s) on %s: %v", user, tag, n.Name, err)
		}
	}
	return env
}

// refused asserts that node i's based refuses the key of envFile in the
// TLS handshake: rc 76 and a handshake failure in its log (not the client
// refusing the key file, rc 4, nor only a failed PAM login).
func (c *acc302) refused(t *testing.T, i int, envFile, what string) {
	t.Helper()
	const handshake = "TLS handshake with remote client failed"
	before := strings.Count(c.based[i].Log(), handshake)
	err := c.cib(t, i, "alice", envFile)
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Errorf("based on %s accepts %s", c.nodes[i].Name, what)
	case !errors.As(err, &ee) || ee.ExitCode() != 76 || strings.Count(c.based[i].Log(), handshake) == before:
		t.Errorf("%s on %s: want the TLS handshake refused (rc 76), got %v\nbased's log:\n%s", what, c.nodes[i].Name, err, c.log(i))
	}
}

var acc302PID = regexp.MustCompile(`pid=(\d+),`)

// listener is the pid of the process listening on node i's remote-tls-port.
func (c *acc302) listener(t *testing.T, i int) string {
	t.Helper()
	out, err := c.nodes[i].Exec(context.Background(), `ss -Htlnp "( sport = :$1 )"`, fmt.Sprint(acc302Port))
	m := acc302PID.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("no listener on %d on %s: %v: %s", acc302Port, c.nodes[i].Name, err, out)
	}
	return m[1]
}

// sameBased asserts node i's based is the process that listened before.
func (c *acc302) sameBased(t *testing.T, i int, pid, after string) {
	t.Helper()
	if !c.based[i].Running() || c.listener(t, i) != pid {
		t.Errorf("pacemaker-based on %s was restarted or stopped by %s (listener pid was %s)", c.nodes[i].Name, after, pid)
	}
}

// authkey is the store's current authkey, as hex.
func (c *acc302) authkey(t *testing.T) string {
	t.Helper()
	cred, err := c.e.Store.Get(context.Background(), keystore.AuthkeyID)
	if err != nil {
		t.Fatalf("the authkey in the store: %v", err)
	}
	return hex.EncodeToString(cred.Key.Bytes())
}

// authkeyFile is the remote node's /etc/pacemaker/authkey, as hex.
func (c *acc302) authkeyFile(t *testing.T) string {
	t.Helper()
	out, err := c.remote.Exec(context.Background(), `od -An -v -tx1 /etc/pacemaker/authkey | tr -d ' \n'`)
	if err != nil {
		t.Fatalf("read the authkey on %s: %v: %s", c.remote.Name, err, out)
	}
	return strings.TrimSpace(out)
}

// acc302Version makes prog on host's PATH the 3.0.2 one: a tmpfs over
// /usr/local/sbin in the host's own mount namespace, with a link to it.
func acc302Version(t *testing.T, host *sshlab.Host, prog string) {
	t.Helper()
	out, err := host.Exec(context.Background(), `set -e
mountpoint -q /usr/local/sbin || mount -t tmpfs -o mode=0755,size=1m tmpfs /usr/local/sbin
ln -sf "$1" "/usr/local/sbin/$2"
"/usr/local/sbin/$2" --version | grep -q "Pacemaker $3"`, pcmklab.Dir()+"/sbin/"+prog, prog, pcmklab.Version)
	if err != nil {
		t.Fatalf("put %s %s on %s's PATH: %v: %s", prog, pcmklab.Version, host.Name, err, out)
	}
}
