package distribute_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/distribute/hosttest"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
	"github.com/pcmkeys/pcmkeys/internal/testroot"
)

// The host contract on this machine, under a root prefix.
func TestContractLocal(t *testing.T) { hosttest.Run(t, localHosts) }

// The host contract over SSH, on one sshlab host made new for every case.
func TestContractSSH(t *testing.T) { hosttest.Run(t, sshHosts(t)) }

// localHosts makes a fresh Local host under a root prefix: as root with
// distinct users, as anyone else with every user mapped to the test's own.
func localHosts(t *testing.T) (distribute.Host, hosttest.Fixture) {
	r := testroot.New(t)
	admin := os.Geteuid()
	fx := hosttest.Fixture{
		Path:  func(p string) string { return r.Dir + p },
		Admin: admin, Hacluster: r.Hacluster, Haclient: r.Haclient, Alice: r.Alice, Bob: r.Bob,
		Distinct: admin == 0,
	}
	fx.Sh = func(t *testing.T, script string) string {
		t.Helper()
		cmd := exec.Command("sh", "-ec", script)
		cmd.Env = append(os.Environ(), "R="+r.Dir)
		cmd.Env = append(cmd.Env, idsEnv(fx)...)
		return run(t, cmd, script)
	}
	fx.Sh(t, `mkdir -m 750 "$R/etc/pacemaker" "$R/root"; chmod 700 "$R/root"; chown :$HACG "$R/etc/pacemaker"`)
	h, err := distribute.NewLocal("lab", r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return h, fx
}

// sshHosts starts one sshlab host and returns what makes it fresh for
// each case of the contract.
func sshHosts(t *testing.T) func(t *testing.T) (distribute.Host, hosttest.Fixture) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	d, err := distribute.NewSSHDialer(distribute.SSHConfig{User: "root", KnownHosts: lab.KnownHosts, IdentityFiles: []string{lab.IdentityFile}, ConnectTimeout: 10 * time.Second, CommandTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	fx := hosttest.Fixture{
		Path:  func(p string) string { return fmt.Sprintf("/proc/%d/root%s", host.PID(), p) },
		Admin: 0, Hacluster: sshlab.UIDHacluster, Haclient: sshlab.GIDHaclient, Alice: sshlab.UIDAlice, Bob: sshlab.UIDBob,
		Distinct: true,
	}
	fx.Sh = func(t *testing.T, script string) string {
		t.Helper()
		cmd, err := host.Command(context.Background(), "env", append(append([]string{"R="}, idsEnv(fx)...), "sh", "-ec", script)...)
		if err != nil {
			t.Fatal(err)
		}
		return run(t, cmd, script)
	}
	return func(t *testing.T) (distribute.Host, hosttest.Fixture) {
		fx.Sh(t, `find /etc/pacemaker /home /root -mindepth 1 -delete
chmod 750 /etc/pacemaker; chown 0:$HACG /etc/pacemaker; chmod 700 /root
for u in alice bob deploy; do mkdir -m 700 /home/$u; chown $u:$u /home/$u; done`)
		h, err := d.Open(context.Background(), host.Name, distribute.SSHEndpoint{Address: "127.0.0.1", Port: host.Port}, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h, fx
	}
}

func idsEnv(fx hosttest.Fixture) []string {
	return []string{fmt.Sprintf("ADMIN=%d", fx.Admin), fmt.Sprintf("HAC=%d", fx.Hacluster), fmt.Sprintf("HACG=%d", fx.Haclient),
		fmt.Sprintf("ALICE=%d", fx.Alice), fmt.Sprintf("BOB=%d", fx.Bob)}
}

// run runs a fixture's script and returns its standard output.
func run(t *testing.T, cmd *exec.Cmd, script string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v: %s", script, err, stderr.Bytes())
	}
	return stdout.String()
}
