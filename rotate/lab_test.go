package rotate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	doc := fmt.Sprintf(`cluster: lab
store: %s
identity_mode: %s
ssh: {user: root, known_hosts: %s, identity_files: [%s]}
cib: {port: 5403}
nodes:
  - {name: host00, address: 127.0.0.1, port: %d}
  - {name: host01, address: 127.0.0.1, port: %d}
remote_nodes:
  - {name: host02, address: 127.0.0.1, port: %d}
clients:
  - {name: host03, address: 127.0.0.1, port: %d}
`, storeYAML(t, store, dir), mode, lab.KnownHosts, lab.IdentityFile, lab.Hosts[0].Port, lab.Hosts[1].Port, lab.Hosts[2].Port, lab.Hosts[3].Port)
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
		for i, want := range []string{"cib+auth", "cib+auth", "auth", ""} {
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
			if out != exp.String() {
				t.Errorf("%s /etc/pacemaker:\n%s\nwant:\n%s", lab.Hosts[i].Name, out, exp.String())
			}
		}
		out, err := lab.Hosts[3].Exec(ctx, "stat -c '%U:%G %a' /home/alice/.pcmkeys/lab.key /home/alice/.pcmkeys/lab.env; cat /home/alice/.pcmkeys/lab.key")
		if err != nil || out != "alice:alice 600\nalice:alice 600\n"+hexs(psk.Key) {
			t.Errorf("alice's files on host03:\n%s %v", out, err)
		}
	})
}

type distHost = distribute.Host

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func hexs(b []byte) string { return hex.EncodeToString(b) }
