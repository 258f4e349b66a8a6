package rotate

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/pcmklab"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// These tests judge doctor's checks of the running daemons by the real
// Pacemaker 3.0.2 (internal/pcmklab): pacemaker-based on host00,
// pacemaker-remoted on host02; host01 runs nothing but has Debian's 2.1.5
// installed, as a node not yet upgraded.

const d302Port = 7403

// newDoctorLab inits a cluster (store "file", identity mode) on three lab
// hosts with their own network: host00 and host01 nodes, host02 a remote
// node.
func newDoctorLab(t *testing.T, mode string) (*Env, *sshlab.Lab) {
	t.Helper()
	lab := pcmklab.StartLab(t, 3, sshlab.Options{})
	dir := t.TempDir()
	e := labDoc{mode: mode, commandTimeout: "60s", cibPort: d302Port, audit: true, nodes: []int{0, 1}, remotes: []int{2}}.env(t, lab, dir)
	if _, err := Init(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e, lab
}

// doctorSays runs doctor and returns host's check named name; it fails
// the test unless the check's OK is ok and its detail holds want.
func doctorSays(t *testing.T, e *Env, host, name string, ok bool, want string) Check {
	t.Helper()
	rep, _ := Doctor(context.Background(), e, nil)
	for _, h := range rep.Hosts {
		for _, c := range h.Checks {
			if h.Host == host && c.Name == name {
				t.Logf("%s %s: ok=%v warning=%v: %s", host, name, c.OK, c.Warning, c.Detail)
				if c.OK != ok || !strings.Contains(c.Detail, want) {
					t.Errorf("%s %s: ok=%v %q, want ok=%v and %q", host, name, c.OK, c.Detail, ok, want)
				}
				return c
			}
		}
	}
	t.Errorf("doctor has no check %q on %s: %+v", name, host, rep.Hosts)
	return Check{}
}

// startBasedAsIs starts pacemaker-based on host without waiting for a
// listener that may never come (pcmklab.StartBased waits for one), then
// waits until it has logged line (it then has read cib-credentials and
// remote-tls-port). It stops when the test ends.
func startBasedAsIs(t *testing.T, host *sshlab.Host, line string) {
	t.Helper()
	cmd, err := host.Command(context.Background(), pcmklab.Dir()+"/libexec/pacemaker/pacemaker-based", "-s")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Environ(), "PCMK_logfile=/var/log/pacemaker/asis.log", "PCMK_logfacility=none")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, _ := host.Exec(context.Background(), `grep -c "$1" /var/log/pacemaker/asis.log`, line)
		if strings.TrimSpace(out) != "0" && strings.TrimSpace(out) != "" {
			break
		}
		if time.Now().After(deadline) {
			out, _ := host.Exec(context.Background(), `tail -20 /var/log/pacemaker/asis.log`)
			t.Fatalf("pacemaker-based on %s did not log %q in 20 s:\n%s", host.Name, line, out)
		}
	}
	time.Sleep(time.Until(began.Add(listenerGrace + time.Second))) // past doctor's "still starting"
}

func mustExec(t *testing.T, h *sshlab.Host, script string, args ...string) {
	t.Helper()
	if out, err := h.Exec(context.Background(), script, args...); err != nil {
		t.Fatalf("%s on %s: %v: %s", script, h.Name, err, out)
	}
}

// TestLab302DoctorRemoteCIB: doctor tells what the real based does with
// cib-credentials and remote-tls-port: TLS-PSK when the file was there at
// its start; anonymous TLS ("restart pending") when it came after, until a
// restart; no listener when its mode was bad at start; remote
// administration off without remote-tls-port. host01 (2.1.5 installed, no
// 3.0.2) is told the file has no effect there.
func TestLab302DoctorRemoteCIB(t *testing.T) {
	e, lab := newDoctorLab(t, "shared")
	node := lab.Hosts[0]
	based := pcmklab.StartBased(t, node, d302Port)
	doctorSays(t, e, "host00", "remote-tls-port", true, fmt.Sprint(d302Port, ", as the config's cib.port (the CIB)"))
	doctorSays(t, e, "host00", "remote CIB listener", true, "with TLS-PSK (anonymous TLS refused)")
	doctorSays(t, e, "host00", "cib-credentials in effect", true, "Pacemaker 3.0.2 serves the remote CIB over TLS-PSK")
	if c := doctorSays(t, e, "host01", "cib-credentials in effect", true, "has no effect here: remote CIB TLS-PSK needs Pacemaker 3.0.2 or later"); !c.Warning {
		t.Errorf("host01: not a warning: %+v", c)
	}

	// cib-credentials first delivered after based started.
	based.Stop()
	mustExec(t, node, "rm /etc/pacemaker/cib-credentials")
	if err := based.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(context.Background(), e, []string{"host00"}); err != nil {
		t.Fatal(err)
	}
	doctorSays(t, e, "host00", "remote CIB listener", false, "restart pending: pacemaker-based (pid")
	doctorSays(t, e, "host00", "remote CIB listener", false, "serves anonymous TLS on 7403 until it restarts")
	if err := based.Restart(); err != nil {
		t.Fatal(err)
	}
	doctorSays(t, e, "host00", "remote CIB listener", true, "with TLS-PSK")

	// A bad mode when based starts: no listener at all.
	based.Stop()
	mustExec(t, node, "chmod 0640 /etc/pacemaker/cib-credentials")
	startBasedAsIs(t, node, "Not starting TLS listener on port")
	doctorSays(t, e, "host00", "remote CIB listener", false, "no TLS listener on 7403: based refused cib-credentials at its start (owner/mode)")
}

// TestLab302DoctorRemoteTLSPortOff: a CIB without remote-tls-port, on a
// running based: "remote administration is off".
func TestLab302DoctorRemoteTLSPortOff(t *testing.T) {
	e, lab := newDoctorLab(t, "per-user")
	node := lab.Hosts[0]
	empty, err := pcmklab.Run(t, node, "root", "/dev/null", "cibadmin", "--empty")
	if err != nil {
		t.Fatalf("cibadmin --empty: %v: %s", err, empty)
	}
	cmd, err := node.Command(context.Background(), "sh", "-c", `cat > /var/lib/pacemaker/cib/cib.xml && chown hacluster:haclient /var/lib/pacemaker/cib/cib.xml && chmod 0600 /var/lib/pacemaker/cib/cib.xml`)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(empty)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write the CIB: %v: %s", err, out)
	}
	startBasedAsIs(t, node, "successfully started and accepting")
	doctorSays(t, e, "host00", "remote-tls-port", false, "not set in the CIB: remote administration is off")
	// identity_mode per-user on a node with Debian's stock PAM.
	if c := doctorSays(t, e, "host00", "per-user logins", true, "PAM service login (CIB_pam_service unset, so login) checks passwords with pam_unix only"); !c.Warning {
		t.Errorf("per-user logins: not a warning: %+v", c)
	}
}

// TestLab302DoctorAuthkey: the real pacemaker-remoted 3.0.2 keeps the key
// it started with: after an authkey rotation doctor says "restart
// pending", and after a restart that it holds the file's key. Doctor never
// offers remoted a handshake of its own (on a live cluster that drops the
// cluster's connection and the remote node is fenced): remoted must log
// no client at all.
func TestLab302DoctorAuthkey(t *testing.T) {
	e, lab := newDoctorLab(t, "shared")
	remoted := pcmklab.StartRemoted(t, lab.Hosts[2])
	doctorSays(t, e, "host02", "authkey in use", true, "holds the file's key")
	if _, err := Rotate(context.Background(), e, Request{Authkey: true}); err != nil {
		t.Fatal(err)
	}
	doctorSays(t, e, "host02", "authkey in use", false, "restart pending: the authkey changed")
	if err := remoted.Restart(); err != nil {
		t.Fatal(err)
	}
	doctorSays(t, e, "host02", "authkey in use", true, "holds the file's key")
	if log := remoted.Log(); strings.Contains(log, "Accepted new remote client connection") {
		t.Errorf("doctor connected to pacemaker-remoted:\n%s", log)
	}
}
