package rotate

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/internal/pcmklab"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// statusLines is what status reported of one host, a line per file:
// path, state and detail.
func statusLines(st *StatusReport, host string) string {
	var b strings.Builder
	for _, h := range st.Hosts {
		if h.Host != host {
			continue
		}
		fmt.Fprintf(&b, "host %s %s\n", h.State, h.Error)
		for _, f := range h.Files {
			fmt.Fprintf(&b, "%s %s %s %s\n", f.Path, f.Owner, f.State, f.Detail)
		}
	}
	return b.String()
}

// TestLabStatusSessions (issue 14): status judges every file of a host in
// one SSH session (sshd at VERBOSE logs each session it starts, so the
// count is the host's), the pacemaker probe of a node included, and says
// of each host state exactly what it said when it looked at one file per
// session. host00 is a node, host01 a client of alice's and of bob's,
// whose revocation could not reach host01: his files there are stale.
func TestLabStatusSessions(t *testing.T) {
	lab := sshlab.Start(t, 2, sshlab.Options{LogLevel: "VERBOSE"})
	e := labDoc{mode: "per-user", nodes: []int{0}, clients: []int{1}}.env(t, lab, t.TempDir())
	ssh := &Env{Config: e.Config}
	t.Cleanup(ssh.Close)
	down := false
	e.Connect = func(ctx context.Context, h config.Host) (distribute.Host, error) {
		if down && h.Name == "host01" {
			return nil, fmt.Errorf("host01: %w", distribute.ErrUnreachable)
		}
		return ssh.connect(ctx, h)
	}
	ctx := context.Background()
	if _, err := Init(ctx, e); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := Onboard(ctx, e, OnboardRequest{User: u, Clients: []string{"host01"}}); err != nil {
			t.Fatal(err)
		}
	}
	down = true
	if _, err := Revoke(ctx, e, []string{"bob"}); err == nil {
		t.Fatal("revoke with host01 down succeeded")
	}
	down = false
	sessions := func(i int) int {
		t.Helper()
		log, err := lab.Hosts[i].Log()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(log, "Starting session: ")
	}
	sh := func(i int, script string) {
		t.Helper()
		if out, err := lab.Hosts[i].Exec(ctx, "set -e; "+script); err != nil {
			t.Fatalf("%s: %v %s", script, err, out)
		}
	}

	// What status said of each host state when it looked at one file per
	// session: the lines of the host in sync, and those unlike them.
	inSync := map[int]string{0: `host ok 
/etc/pacemaker/cib-credentials hacluster ok 
/etc/pacemaker/authkey hacluster ok 
`, 1: `host findings 
~/.pcmkeys/lab.key alice ok 
~/.pcmkeys/lab.env alice ok 
~/.pcmkeys/lab.key bob stale belongs to a revoked admin
~/.pcmkeys/lab.env bob stale belongs to a revoked admin
~/.pcmkeys/lab.passwd bob ok 
`}
	const a = "cd /home/alice/.pcmkeys; "
	for _, tc := range []struct {
		name         string
		host         int
		tamper, undo string
		// unlike maps the start of a line in sync (host, or path and
		// owner) to what is said instead.
		unlike map[string]string
		// sessions are those status starts on the host: one for every
		// file and the probe, and a lookup of the home of an owner whose
		// env file could not be inspected.
		sessions int
	}{
		{name: "client in sync", host: 1, sessions: 1},
		{name: "node in sync", host: 0, sessions: 1},
		{name: "drift", host: 1, tamper: a + "cp lab.key k; printf 00 > lab.key", undo: a + "cat k > lab.key; rm k",
			unlike: map[string]string{"~/.pcmkeys/lab.key alice": "drift content differs from the store"}, sessions: 1},
		{name: "env drift", host: 1, tamper: a + "cp lab.env k; echo x >> lab.env", undo: a + "cat k > lab.env; rm k",
			unlike: map[string]string{"~/.pcmkeys/lab.env alice": "drift content differs from the store"}, sessions: 1},
		{name: "wrong mode", host: 1, tamper: a + "chmod 644 lab.env", undo: a + "chmod 600 lab.env",
			unlike: map[string]string{"~/.pcmkeys/lab.env alice": "wrong_mode mode 0644, want 0600"}, sessions: 1},
		{name: "wrong owner", host: 1, tamper: a + "chown bob lab.key; chmod 644 lab.key", undo: a + "chown alice lab.key; chmod 600 lab.key",
			unlike: map[string]string{"~/.pcmkeys/lab.key alice": "wrong_owner owned by bob:alice, want alice"}, sessions: 1},
		{name: "unreadable by its owner", host: 1, tamper: a + "chown bob lab.env", undo: a + "chown alice lab.env",
			unlike: map[string]string{"~/.pcmkeys/lab.env alice": "drift content could not be read from the store"}, sessions: 1},
		{name: "missing", host: 1, tamper: a + "mv lab.env e", undo: a + "mv e lab.env",
			unlike: map[string]string{"~/.pcmkeys/lab.env alice": "missing no such file"}, sessions: 1},
		{name: "symlink", host: 1, tamper: a + "mv lab.env k; ln -s k lab.env", undo: a + "rm lab.env; mv k lab.env",
			unlike: map[string]string{"~/.pcmkeys/lab.env alice": "unsafe a symbolic link"}, sessions: 1},
		{name: "symlinked directory", host: 1, tamper: "cd /home/alice; mv .pcmkeys p; ln -s p .pcmkeys", undo: "cd /home/alice; rm .pcmkeys; mv p .pcmkeys",
			unlike: map[string]string{
				"~/.pcmkeys/lab.key alice": "unsafe inspect ~/.pcmkeys/lab.key on host01: directory /home/alice/.pcmkeys is a symbolic link",
				"~/.pcmkeys/lab.env alice": "unsafe inspect ~/.pcmkeys/lab.env on host01: directory /home/alice/.pcmkeys is a symbolic link",
			}, sessions: 2},
		{name: "stale removed", host: 1, tamper: "cd /home/bob/.pcmkeys; mv lab.key k", undo: "cd /home/bob/.pcmkeys; mv k lab.key",
			unlike: map[string]string{"~/.pcmkeys/lab.key bob": "ok "}, sessions: 1},
		{name: "revoked admin's account gone", host: 1, tamper: "cp /etc/passwd /etc/passwd.t; sed -i /^bob:/d /etc/passwd", undo: "cat /etc/passwd.t > /etc/passwd; rm /etc/passwd.t",
			unlike: map[string]string{"host": "ok ", "~/.pcmkeys/lab.key bob": "ok ", "~/.pcmkeys/lab.env bob": "ok "}, sessions: 1},
		{name: "owner's account gone", host: 1, tamper: "cp /etc/passwd /etc/passwd.t; sed -i /^alice:/d /etc/passwd", undo: "cat /etc/passwd.t > /etc/passwd; rm /etc/passwd.t",
			unlike: map[string]string{
				"~/.pcmkeys/lab.key alice": `error inspect ~/.pcmkeys/lab.key on host01: no such user "alice"`,
				"~/.pcmkeys/lab.env alice": `error on host01: no such user "alice"`, // its home looked up first
			}, sessions: 2},
		{name: "node drift and mode", host: 0, tamper: "cd /etc/pacemaker; cp cib-credentials c; echo x >> cib-credentials; chmod 640 authkey",
			undo: "cd /etc/pacemaker; cat c > cib-credentials; rm c; chmod 600 authkey",
			unlike: map[string]string{
				"host": "findings ",
				"/etc/pacemaker/cib-credentials hacluster": "drift content differs from the store",
				"/etc/pacemaker/authkey hacluster":         "wrong_mode mode 0640, want 0600",
			}, sessions: 1},
		{name: "node symlink", host: 0, tamper: "cd /etc/pacemaker; mv authkey k; ln -s k authkey", undo: "cd /etc/pacemaker; rm authkey; mv k authkey",
			unlike: map[string]string{"host": "findings ", "/etc/pacemaker/authkey hacluster": "unsafe a symbolic link"}, sessions: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tamper != "" {
				sh(tc.host, tc.tamper)
				defer sh(tc.host, tc.undo)
			}
			var want strings.Builder
			for _, l := range strings.SplitAfter(inSync[tc.host], "\n") {
				for start, instead := range tc.unlike {
					if strings.HasPrefix(l, start+" ") {
						l = start + " " + instead + "\n"
					}
				}
				want.WriteString(l)
			}
			name := lab.Hosts[tc.host].Name
			s0 := sessions(tc.host)
			st, err := Status(ctx, e, StatusRequest{Hosts: []string{name}})
			s1 := sessions(tc.host)
			if got := statusLines(st, name); got != want.String() {
				t.Errorf("status of %s:\n%swant\n%s", name, got, want.String())
			}
			if (err == nil) != strings.HasPrefix(want.String(), "host ok ") {
				t.Errorf("status of %s: %v", name, err)
			}
			if s1-s0 != tc.sessions {
				t.Errorf("status of %s took %d sessions, want %d", name, s1-s0, tc.sessions)
			}
		})
	}
}

var stamp = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ`)

// TestLabStatusSessions302: on a node running the real pacemaker-based
// 3.0.2, also alice's client (six files), status asks the daemons in the
// same session as it inspects the files, and says what the probe says when
// it runs on its own (through Exec, as doctor runs it): nothing in sync,
// restart pending after cib-credentials came while based ran. A file whose
// inspection fails stops the probe in the batch: it runs on its own then.
func TestLabStatusSessions302(t *testing.T) {
	requireGnuTLS(t)
	lab := pcmklab.StartLab(t, 1, sshlab.Options{LogLevel: "VERBOSE"})
	node := lab.Hosts[0]
	e := labDoc{commandTimeout: "20s", cibPort: p302Port, nodes: []int{0}}.env(t, lab, t.TempDir())
	ctx := context.Background()
	if _, err := Init(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := Onboard(ctx, e, OnboardRequest{User: "alice", Clients: []string{"host00"}}); err != nil {
		t.Fatal(err)
	}
	based := pcmklab.StartBased(t, node, p302Port)
	sessions := func() int {
		t.Helper()
		log, err := node.Log()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(log, "Starting session: ")
	}
	// daemons is what the probe says of host00 on its own, and what
	// status said of its daemons.
	daemons := func(t *testing.T, st *StatusReport) (alone, said string) {
		t.Helper()
		h, err := e.connect(ctx, e.Config.Hosts[0])
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		e.pacemakerChecks(ctx, h, e.Config.Hosts[0], "", nil, func(c Check) {
			if !c.OK {
				alone += c.Name + " " + c.Detail + "\n"
			}
		})
		for _, f := range st.Hosts[0].Files {
			if f.Kind == "daemon" {
				said += f.Path + " " + f.Detail + "\n"
			}
		}
		return alone, said
	}
	check := func(t *testing.T, wantSessions int, wantFinding string) {
		t.Helper()
		s0 := sessions()
		st, err := Status(ctx, e, StatusRequest{})
		if n := sessions() - s0; n != wantSessions {
			t.Errorf("status took %d sessions, want %d", n, wantSessions)
		}
		if len(st.Hosts) != 1 || len(st.Hosts[0].Files) < 6 {
			t.Fatalf("status: %v %+v", err, st.Hosts)
		}
		alone, said := daemons(t, st)
		// A daemon's start is the probe's clock less its uptime, read a
		// moment apart: it may differ by a second between two probes.
		if stamp.ReplaceAllString(said, "TIME") != stamp.ReplaceAllString(alone, "TIME") {
			t.Errorf("status said of the daemons\n%swhere the probe alone says\n%s", said, alone)
		}
		if !strings.Contains(said, wantFinding) || (wantFinding == "") != (said == "") {
			t.Errorf("status said of the daemons\n%swant %q", said, wantFinding)
		}
	}
	t.Run("in sync", func(t *testing.T) { check(t, 1, "") })

	based.Stop()
	if out, err := node.Exec(ctx, "rm /etc/pacemaker/cib-credentials"); err != nil {
		t.Fatal(err, out)
	}
	if err := based.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, e, nil); err != nil {
		t.Fatal(err)
	}
	t.Run("restart pending", func(t *testing.T) { check(t, 1, "restart pending") })
	t.Run("a file not inspected", func(t *testing.T) {
		// /etc/pacemaker open to all: its files are refused, and the
		// batch runs no command after a file it refused. One session for
		// the batch, one for the probe.
		if out, err := node.Exec(ctx, "chmod 777 /etc/pacemaker"); err != nil {
			t.Fatal(err, out)
		}
		defer node.Exec(ctx, "chmod 750 /etc/pacemaker")
		check(t, 2, "restart pending")
	})
}
