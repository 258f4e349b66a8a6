package rotate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// labCluster is a cluster of SSH lab hosts: host00 and host01 are nodes,
// host02 a remote node reached as deploy with sudo, host03 a client.
func labCluster(t *testing.T, store, mode string) (*Env, *sshlab.Lab) {
	t.Helper()
	lab := sshlab.Start(t, 4, sshlab.Options{SudoOnly: []int{2}})
	dir := t.TempDir()
	doc := labDoc{store: store, mode: mode, nodes: []int{0, 1}, remotes: []int{2}, clients: []int{3}}.yaml(t, lab, dir)
	cfg, err := config.Parse([]byte(doc), dir+"/pcmkeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(context.Background(), cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Config: cfg, Store: st, Operator: "tester", Parallel: 8}
	// host02 refuses root: reach it as deploy with sudo.
	sudoCfg := *cfg
	sudoCfg.SSH.User, sudoCfg.SSH.Become = "deploy", "sudo"
	sudoEnv := &Env{Config: &sudoCfg}
	e.Connect = func(ctx context.Context, h config.Host) (_ distHost, err error) {
		if h.Name == "host02" {
			return sudoEnv.connect(ctx, h)
		}
		return (&Env{Config: cfg}).connect(ctx, h)
	}
	t.Cleanup(func() { sudoEnv.Close(); st.Close() })
	return e, lab
}

func TestLabInitAndOnboard(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		e, lab := labCluster(t, store, "shared")
		ctx := context.Background()
		if _, err := Init(ctx, e); err != nil {
			t.Fatal(err)
		}
		if _, err := Onboard(ctx, e, OnboardRequest{User: "alice", Clients: []string{"host03"}}); err != nil {
			t.Fatal(err)
		}
		psk, err := e.Store.Get(ctx, "cib/hacluster")
		if err != nil {
			t.Fatal(err)
		}
		auth, err := e.Store.Get(ctx, "authkey")
		if err != nil {
			t.Fatal(err)
		}
		pw, err := e.Store.Get(ctx, "password/hacluster")
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []string{"cib+auth+pw", "cib+auth+pw", "auth", ""} {
			out, err := lab.Hosts[i].Exec(ctx, "cd /etc/pacemaker && for f in $(ls -A); do echo \"$f $(stat -c '%U:%G %a' $f) $(sha256sum < $f | cut -c1-64)\"; done")
			if err != nil {
				t.Fatal(err)
			}
			var exp strings.Builder
			if strings.Contains(want, "auth") {
				fmt.Fprintf(&exp, "authkey hacluster:haclient 600 %s\n", sha(auth.Key))
			}
			if strings.Contains(want, "cib") {
				fmt.Fprintf(&exp, "cib-credentials hacluster:haclient 600 %s\n", sha([]byte("hacluster:"+hexs(psk.Key)+"\n")))
			}
			if strings.Contains(want, "pw") { // which password pcmkeys set, by fingerprint
				fmt.Fprintf(&exp, "pcmkeys-password root:root 600 %s\n", sha([]byte("hacluster "+pw.Key.Fingerprint()+"\n")))
			}
			if out != exp.String() {
				t.Errorf("%s /etc/pacemaker:\n%s\nwant:\n%s", lab.Hosts[i].Name, out, exp.String())
			}
		}
		out, err := lab.Hosts[3].Exec(ctx, "stat -c '%U:%G %a' /home/alice/.pcmkeys/lab.key /home/alice/.pcmkeys/lab.env /home/alice/.pcmkeys/lab.passwd; cat /home/alice/.pcmkeys/lab.key /home/alice/.pcmkeys/lab.passwd")
		if err != nil || out != "alice:alice 600\nalice:alice 600\nalice:alice 600\n"+hexs(psk.Key)+hexs(pw.Key)+"\n" {
			t.Errorf("alice's files on host03:\n%s %v", out, err)
		}
		// hacluster's password on the nodes is the one in the store: the
		// env file, sourced by alice, gives it to the PAM login.
		for _, n := range lab.Hosts[:2] {
			shadow, err := n.Exec(ctx, "getent shadow hacluster | cut -d: -f2")
			if err != nil || !strings.HasPrefix(shadow, "$") {
				t.Errorf("%s: hacluster has no password hash: %q %v", n.Name, shadow, err)
			}
		}
		env, err := lab.Hosts[3].Exec(ctx, `su alice -s /bin/sh -c '. /home/alice/.pcmkeys/lab.env; printf %s "$CIB_passwd"'`)
		if err != nil || env != hexs(pw.Key) {
			t.Errorf("CIB_passwd from alice's env file: %v", err)
		}
	})
}

type distHost = distribute.Host

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func hexs(b []byte) string { return hex.EncodeToString(b) }

// handshake asks GnuTLS, as pacemaker-based uses it, whether the PSK in
// keyHex is accepted for identity by the cib-credentials file on a lab
// node: gnutls-serv reads the node's own file inside the node's mount
// namespace, in a network namespace of its own, and gnutls-cli connects
// there. (gnutls-cli takes the key only in its argv: a test key, in a
// namespace of the test's own.)
func handshake(t *testing.T, node *sshlab.Host, identity, keyHex string) bool {
	t.Helper()
	script := `ip link set lo up
gnutls-serv --pskpasswd /etc/pacemaker/cib-credentials --priority NORMAL:+DHE-PSK:+PSK -p 5403 >/dev/null 2>&1 &
srv=$!
i=0
while ! (echo >/dev/tcp/127.0.0.1/5403) 2>/dev/null; do i=$((i+1)); [ $i -lt 100 ] || exit 9; sleep 0.05; done
echo | timeout 10 gnutls-cli --priority NORMAL:+DHE-PSK:+PSK --pskusername "$1" --pskkey "$2" -p 5403 127.0.0.1 2>&1
rc=$?
kill $srv
exit $rc`
	out, err := node.Exec(context.Background(), `exec unshare --net bash -c "$1" gnutls "$2" "$3"`, script, identity, keyHex)
	if strings.Contains(out, "exit status 9") {
		t.Fatalf("gnutls-serv did not start on %s", node.Name)
	}
	return err == nil && strings.Contains(out, "Handshake was completed")
}

func requireGnuTLS(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"gnutls-serv", "gnutls-cli", "ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (apt-get install gnutls-bin iproute2; .ci/run does)", bin)
		}
	}
}

// TestLabAcceptanceCIB: after onboard every node accepts alice's client
// key file; after a rotation the old key is refused and the new accepted;
// after revoke her key is refused on every node while bob's still works.
func TestLabAcceptanceCIB(t *testing.T) {
	requireGnuTLS(t)
	for _, tc := range []struct{ store, mode string }{{"file", "per-user"}, {"vault", "shared"}, {"vault", "per-user"}, {"file", "shared"}} {
		mode := tc.mode
		t.Run(tc.store+"/"+mode, func(t *testing.T) {
			e, lab := labCluster(t, tc.store, mode)
			ctx := context.Background()
			if _, err := Init(ctx, e); err != nil {
				t.Fatal(err)
			}
			for _, u := range []string{"alice", "bob"} {
				if _, err := Onboard(ctx, e, OnboardRequest{User: u, Clients: []string{"host03"}}); err != nil {
					t.Fatal(err)
				}
			}
			client := func(user string) string {
				out, err := lab.Hosts[3].Exec(ctx, "cat /home/"+user+"/.pcmkeys/lab.key")
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			ident := func(user string) string {
				if mode == "shared" {
					return "hacluster"
				}
				return user
			}
			nodes := lab.Hosts[:2]
			aliceOld := client("alice")
			for _, n := range nodes {
				if !handshake(t, n, ident("alice"), aliceOld) {
					t.Errorf("%s refuses alice's key after onboard", n.Name)
				}
			}
			if _, err := Rotate(ctx, e, Request{CIB: true}); err != nil {
				t.Fatal(err)
			}
			aliceNew := client("alice")
			if aliceNew == aliceOld {
				t.Fatal("alice's client file did not change in the rotation")
			}
			for _, n := range nodes {
				if handshake(t, n, ident("alice"), aliceOld) {
					t.Errorf("%s still accepts the old key after rotation", n.Name)
				}
				if !handshake(t, n, ident("alice"), aliceNew) {
					t.Errorf("%s refuses the new key after rotation", n.Name)
				}
			}
			if _, err := Revoke(ctx, e, []string{"alice"}); err != nil {
				t.Fatal(err)
			}
			bobKey := client("bob")
			for _, n := range nodes {
				if handshake(t, n, ident("alice"), aliceNew) {
					t.Errorf("%s still accepts alice's key after revoke", n.Name)
				}
				if !handshake(t, n, ident("bob"), bobKey) {
					t.Errorf("%s refuses bob's key after alice's revoke", n.Name)
				}
			}
		})
	}
}

// remotedAccepts starts pacemaker-remoted on a lab host, in the host's mount
// namespace and a network namespace of its own, reading the host's
// /etc/pacemaker/authkey, and reports for each hex key whether a TLS-PSK
// handshake as "lrmd" on port 3121 completes. Each call is a fresh start of
// the daemon (Pacemaker 3.0.2+ reads the key only then).
func remotedAccepts(t *testing.T, host *sshlab.Host, keysHex ...string) []bool {
	t.Helper()
	script := `ip link set lo up
mkdir -p /var/lib/pacemaker /var/log/pacemaker 2>/dev/null
PCMK_logfile=/dev/null /usr/sbin/pacemaker-remoted >/dev/null 2>&1 &
pid=$!
i=0
while ! (echo >/dev/tcp/127.0.0.1/3121) 2>/dev/null; do i=$((i+1)); [ $i -lt 100 ] || { kill $pid; exit 9; }; sleep 0.05; done
for k; do
	if echo | timeout 10 gnutls-cli --priority NORMAL:+DHE-PSK:+PSK --pskusername lrmd --pskkey "$k" -p 3121 127.0.0.1 2>&1 | grep -q "Handshake was completed"; then echo yes; else echo no; fi
done
kill $pid
wait $pid 2>/dev/null
exit 0`
	args := append([]string{script}, keysHex...)
	out, err := host.Exec(context.Background(), `s=$1; shift; exec unshare --net bash -c "$s" remoted "$@"`, args...)
	if err != nil {
		t.Fatalf("pacemaker-remoted on %s: %v\n%s", host.Name, err, out)
	}
	var res []bool
	for _, l := range strings.Fields(out) {
		res = append(res, l == "yes")
	}
	if len(res) != len(keysHex) {
		t.Fatalf("pacemaker-remoted on %s: %q", host.Name, out)
	}
	return res
}

// TestLabAcceptanceAuthkey: pacemaker-remoted accepts the delivered
// authkey; after a rotation and a restart it accepts the new key and
// refuses the old.
func TestLabAcceptanceAuthkey(t *testing.T) {
	requireGnuTLS(t)
	if _, err := exec.LookPath("/usr/sbin/pacemaker-remoted"); err != nil {
		t.Skip("pacemaker-remoted is not installed (apt-get install pacemaker-remote; .ci/run does)")
	}
	e, lab := labCluster(t, "vault", "shared")
	ctx := context.Background()
	if _, err := Init(ctx, e); err != nil {
		t.Fatal(err)
	}
	remote := lab.Hosts[2] // the remote node, reached with sudo
	old, err := e.Store.Get(ctx, "authkey")
	if err != nil {
		t.Fatal(err)
	}
	if got := remotedAccepts(t, remote, hexs(old.Key)); !got[0] {
		t.Fatal("pacemaker-remoted refuses the delivered authkey")
	}
	rep, err := Rotate(ctx, e, Request{Authkey: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "restart") {
		t.Errorf("the report does not say a restart is needed: %v", rep.Notes)
	}
	cur, err := e.Store.Get(ctx, "authkey")
	if err != nil {
		t.Fatal(err)
	}
	got := remotedAccepts(t, remote, hexs(cur.Key), hexs(old.Key))
	if !got[0] || got[1] {
		t.Errorf("after rotation and restart: new key accepted %v, old key accepted %v", got[0], got[1])
	}
}

// TestLabRestartPlan: after an authkey rotation, a node running Pacemaker
// 2.1.5 needs no restart; one that reports 3.0.2 does, and --restart runs
// the configured command there and only there.
// TestLabRestartRefusedWithoutCluster: rotate --authkey --restart reads
// the live cluster before it touches anything; on hosts where no cluster
// answers crm_mon it refuses, and neither the store nor any host changes.
func TestLabRestartRefusedWithoutCluster(t *testing.T) {
	e, lab := labCluster(t, "file", "shared")
	ctx := context.Background()
	if _, err := Init(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := Rotate(ctx, e, Request{CIB: true, Restart: true}); !errors.Is(err, ErrBadInput) {
		t.Errorf("--restart without --authkey: %v", err)
	}
	before, _ := e.Store.Get(ctx, "authkey")
	files, _ := lab.Hosts[0].Exec(ctx, "sha256sum /etc/pacemaker/authkey")
	_, err := Rotate(ctx, e, Request{Authkey: true, Restart: true})
	if err == nil || !strings.Contains(err.Error(), "read the live cluster before touching it") {
		t.Fatalf("rotate --authkey --restart without a cluster: %v", err)
	}
	after, _ := e.Store.Get(ctx, "authkey")
	if after.Version.Version != before.Version.Version {
		t.Error("the store changed")
	}
	if now, _ := lab.Hosts[0].Exec(ctx, "sha256sum /etc/pacemaker/authkey"); now != files {
		t.Error("host00's authkey changed")
	}
}

func TestLabDoctor(t *testing.T) {
	e, _ := labCluster(t, "file", "shared")
	ctx := context.Background()
	if _, err := Init(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := Onboard(ctx, e, OnboardRequest{User: "alice", Clients: []string{"host03"}}); err != nil {
		t.Fatal(err)
	}
	rep, err := Doctor(ctx, e, nil)
	if err != nil {
		t.Fatalf("doctor: %v %+v", err, rep)
	}
	for _, h := range rep.Hosts {
		if h.Role == "client" {
			continue
		}
		found := false
		for _, c := range h.Checks {
			found = found || (c.Name == "pacemaker" && strings.HasPrefix(c.Detail, "Pacemaker 2.1.5"))
		}
		if !found {
			t.Errorf("%s: no Pacemaker version in %+v", h.Host, h.Checks)
		}
	}
}
