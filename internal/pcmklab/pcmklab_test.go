package pcmklab

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// clientFiles writes an admin's key file and env file by hand, as pcmkeys
// would, and returns the env file's path.
func clientFiles(t *testing.T, host *sshlab.Host, user, name, keyHex string, port int) string {
	t.Helper()
	dir := "/home/" + user + "/"
	env, err := credfile.RenderClientEnv(credfile.ClientEnv{Server: "127.0.0.1", Port: port, User: "hacluster", KeyFile: dir + name + ".key"})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, host, dir+name+".key", user+":"+user, "0600", keyHex+"\n")
	writeFile(t, host, dir+name+".env", user+":"+user, "0600", string(env))
	return dir + name + ".env"
}

// The real pacemaker-based 3.0.2 takes a hand-written cib-credentials and
// client files; a wrong key fails; a live session survives a rotation of
// cib-credentials, and ss -K on the node ends it.
func TestBasedRemoteCIB(t *testing.T) {
	lab := StartLab(t, 1, sshlab.Options{})
	node := lab.Hosts[0]
	const port = 7301
	key := randomHex(t, 32)
	WriteCIBCredentials(t, node, "hacluster:"+key+"\n")
	SetPassword(t, node, "hacluster", "lab-"+randomHex(t, 8))
	good := clientFiles(t, node, "alice", "good", key, port)
	bad := clientFiles(t, node, "alice", "bad", randomHex(t, 32), port)

	based := StartBased(t, node, port)
	t.Logf("pacemaker-based %s listens %v after start", Version, based.StartTime.Round(10*time.Millisecond))

	out, err := Cibadmin(t, node, "alice", good)
	if err != nil || !strings.Contains(out, "<cib ") {
		t.Fatalf("cibadmin -Q with the right key: %v: %s\nbased's log:\n%s", err, out, tail(based.Log(), 20))
	}
	if out, err := Cibadmin(t, node, "alice", bad); err == nil {
		t.Fatalf("cibadmin -Q with a wrong key succeeded: %s", out)
	}
	// The env file's CIB_passwd wins over the lab's: a wrong password fails
	// after the handshake, in PAM.
	writeFile(t, node, "/home/alice/wrongpw.env", "alice:alice", "0600", "export CIB_passwd=wrong\n. "+good+"\n")
	if out, err := Cibadmin(t, node, "alice", "/home/alice/wrongpw.env"); err == nil {
		t.Fatalf("cibadmin -Q with a wrong password succeeded: %s", out)
	}
	for _, want := range []string{"TLS handshake with remote client failed", "Access for remote user hacluster denied"} {
		if log := based.Log(); !strings.Contains(log, want) {
			t.Errorf("based's log lacks %q:\n%s", want, tail(log, 20))
		}
	}

	s := HoldSession(t, node, "alice", good)
	rotated := randomHex(t, 32)
	WriteCIBCredentials(t, node, "hacluster:"+rotated+"\n")
	newEnv := clientFiles(t, node, "alice", "rotated", rotated, port)
	// GnuTLS re-reads the file on every handshake: new key in, old key out.
	if out, err := Cibadmin(t, node, "alice", newEnv); err != nil {
		t.Errorf("cibadmin -Q with the rotated key: %v: %s", err, out)
	}
	if out, err := Cibadmin(t, node, "alice", good); err == nil {
		t.Errorf("cibadmin -Q with the old key after rotation succeeded: %s", out)
	}
	if !s.Connected() {
		t.Fatal("the live session ended when cib-credentials changed: Pacemaker 3.0.2 keeps it")
	}
	KillSessions(t, node, port)
	if !s.WaitDisconnected(5 * time.Second) {
		t.Fatal("the live session is still established after ss -K on the node")
	}
	if !based.Running() {
		t.Fatal("pacemaker-based exited")
	}
	began := time.Now()
	if err := based.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("pacemaker-based restart: %v", time.Since(began).Round(10*time.Millisecond))
	if out, err := Cibadmin(t, node, "alice", newEnv); err != nil {
		t.Errorf("cibadmin -Q after based restarted: %v: %s", err, out)
	}
}

// pacemaker-remoted 3.0.2 accepts the authkey it started with.
func TestRemotedAuthkey(t *testing.T) {
	lab := StartLab(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	raw := make([]byte, 256)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	writeFile(t, host, "/etc/pacemaker/authkey", "hacluster:haclient", "0600", string(raw))
	r := StartRemoted(t, host)
	t.Logf("pacemaker-remoted %s listens %v after start", Version, r.StartTime.Round(10*time.Millisecond))
	if err := r.Handshake(t, hex.EncodeToString(raw)); err != nil {
		t.Fatalf("the right authkey: %v\nremoted's log:\n%s", err, tail(r.Log(), 20))
	}
	if err := r.Handshake(t, randomHex(t, 256)); err == nil {
		t.Fatal("a wrong authkey completed the handshake")
	}
}

// waitFor ends when the condition holds, at once when the process exits,
// and at the deadline otherwise.
func TestWaitFor(t *testing.T) {
	n := 0
	if err := waitFor(5*time.Second, time.Millisecond, nil, func() bool { n++; return n == 3 }); err != nil || n != 3 {
		t.Errorf("condition met on the third look: %v after %d looks", err, n)
	}
	exited := make(chan struct{})
	close(exited)
	began := time.Now()
	if err := waitFor(5*time.Second, time.Hour, exited, func() bool { return false }); err != errExited || time.Since(began) > time.Second {
		t.Errorf("process gone: %v after %v", err, time.Since(began))
	}
	if err := waitFor(50*time.Millisecond, time.Hour, nil, func() bool { return false }); err != errTimeout {
		t.Errorf("never: %v", err)
	}
}
