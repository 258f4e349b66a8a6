package rotate

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// TestLabOneLoginPerHost: host00, a node that is also alice's client
// host, logs in once in a rotation (stage and commit of its server files,
// then alice's new client files) and once in alice's revocation (the cut,
// then the removal of her files); the other node and bob's client host
// once each too (bob's client host is not reached by a per-user
// revocation of alice). Logins are counted from sshd's log at VERBOSE ("Accepted
// publickey"), sessions with them ("Starting session: ").
func TestLabOneLoginPerHost(t *testing.T) {
	for _, mode := range []string{"shared", "per-user"} {
		t.Run(mode, func(t *testing.T) {
			lab := sshlab.Start(t, 3, sshlab.Options{LogLevel: "VERBOSE"})
			e := labDoc{mode: mode, nodes: []int{0, 1}, clients: []int{2}}.env(t, lab, t.TempDir())
			ctx := context.Background()
			if _, err := Init(ctx, e); err != nil {
				t.Fatal(err)
			}
			for _, a := range []OnboardRequest{{User: "alice", Clients: []string{"host00"}}, {User: "bob", Clients: []string{"host02"}}} {
				if _, err := Onboard(ctx, e, a); err != nil {
					t.Fatal(err)
				}
			}
			// counts says, per host, its logins and sessions since last.
			last := make([][2]int, len(lab.Hosts))
			counts := func() string {
				var out []string
				for i, h := range lab.Hosts {
					log, err := h.Log()
					if err != nil {
						t.Fatal(err)
					}
					now := [2]int{strings.Count(log, "Accepted publickey"), strings.Count(log, "Starting session: ")}
					out = append(out, fmt.Sprintf("%s %d login(s) %d session(s)", h.Name, now[0]-last[i][0], now[1]-last[i][1]))
					last[i] = now
				}
				return strings.Join(out, ", ")
			}
			counts()
			if _, err := Rotate(ctx, e, Request{CIB: true}); err != nil {
				t.Fatal(err)
			}
			rotation := counts()
			if _, err := Revoke(ctx, e, []string{"alice"}); err != nil {
				t.Fatal(err)
			}
			revocation := counts()
			t.Logf("rotate: %s\nrevoke: %s", rotation, revocation)
			// Per user, alice's revocation leaves bob's client host alone.
			revoked := map[string]string{"shared": "1 1 1", "per-user": "1 1 0"}[mode]
			for _, c := range []struct{ what, got, want string }{{"rotate", rotation, "1 1 1"}, {"revoke", revocation, revoked}} {
				for i, n := range strings.Fields(c.want) {
					if !strings.Contains(c.got, fmt.Sprintf("%s %s login(s)", lab.Hosts[i].Name, n)) {
						t.Errorf("%s: %s; want logins %s (host00 host01 host02)", c.what, c.got, c.want)
						break
					}
				}
			}
			// Alice's files on host00 are gone, bob's key on host02 is the
			// one in force.
			out, err := lab.Hosts[0].Exec(ctx, "ls -A /home/alice/.pcmkeys")
			if err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("alice's files on host00 after revoke: %q %v", out, err)
			}
		})
	}
}
