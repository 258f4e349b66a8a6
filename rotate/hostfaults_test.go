package rotate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// faultLab is a per-user cluster of three lab nodes and a client, with
// alice and bob onboarded, on a lab made with opts.
func faultLab(t *testing.T, opts sshlab.Options, commandTimeout time.Duration) (*Env, *sshlab.Lab) {
	t.Helper()
	lab := sshlab.Start(t, 4, opts)
	dir := t.TempDir()
	e := labDoc{mode: "per-user", commandTimeout: commandTimeout.String(), nodes: []int{0, 1, 2}, clients: []int{3}}.env(t, lab, dir)
	ctx := context.Background()
	if _, err := Init(ctx, e); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := Onboard(ctx, e, OnboardRequest{User: u, Clients: []string{"host03"}}); err != nil {
			t.Fatal(err)
		}
	}
	return e, lab
}

// pacemakerDirs returns each node's /etc/pacemaker listing with hashes.
func pacemakerDirs(t *testing.T, lab *sshlab.Lab, hosts ...int) map[int]string {
	t.Helper()
	out := map[int]string{}
	for _, i := range hosts {
		s, err := lab.Hosts[i].Exec(context.Background(), "cd /etc/pacemaker && for f in $(ls -A); do echo \"$f $(stat -c '%U:%G %a' $f) $(sha256sum < $f)\"; done")
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

func failedHosts(err error) []string {
	var pe *PartialError
	if !errors.As(err, &pe) {
		return nil
	}
	var out []string
	for _, f := range pe.Failed {
		out = append(out, f.Host+":"+string(f.Status))
	}
	return out
}

// TestHostFaults: a host that is down, one whose disk is full, one that is
// too slow, one whose sshd dies mid-run. Rotation aborts with the old key
// intact everywhere and no temp file; revocation completes everywhere else
// and names the host; after recovery push converges.
func TestHostFaults(t *testing.T) {
	ctx := context.Background()
	t.Run("down", func(t *testing.T) {
		e, lab := faultLab(t, sshlab.Options{}, time.Minute)
		before := pacemakerDirs(t, lab, 0, 2)
		ver := mustVersion(t, e, "cib/alice")
		lab.Hosts[1].Stop()
		_, err := Rotate(ctx, e, Request{CIB: true})
		if got := failedHosts(err); len(got) != 1 || got[0] != "host01:unreachable" {
			t.Fatalf("rotate with host01 down: %v", err)
		}
		if after := pacemakerDirs(t, lab, 0, 2); after[0] != before[0] || after[2] != before[2] {
			t.Errorf("a node changed although host01 was down:\n%v\n%v", before, after)
		}
		if mustVersion(t, e, "cib/alice") != ver {
			t.Error("the store moved")
		}
		_, err = Revoke(ctx, e, []string{"alice"})
		if got := failedHosts(err); len(got) != 1 || got[0] != "host01:unreachable" {
			t.Fatalf("revoke with host01 down: %v", err)
		}
		for _, i := range []int{0, 2} {
			if s, _ := lab.Hosts[i].Exec(ctx, "cut -d: -f1 /etc/pacemaker/cib-credentials"); s != "bob\n" {
				t.Errorf("host%02d after revoke: %q", i, s)
			}
		}
		if err := lab.Hosts[1].Restart(); err != nil {
			t.Fatal(err)
		}
		if _, err := Revoke(ctx, e, []string{"alice"}); err != nil {
			t.Fatalf("revoke rerun after recovery: %v", err)
		}
		if _, err := Push(ctx, e, nil); err != nil {
			t.Fatalf("push after recovery: %v", err)
		}
		if _, err := Status(ctx, e, StatusRequest{}); err != nil {
			t.Errorf("status after recovery: %v", err)
		}
	})
	t.Run("disk full", func(t *testing.T) {
		e, lab := faultLab(t, sshlab.Options{}, time.Minute)
		before := pacemakerDirs(t, lab, 0, 1, 2)
		if _, err := lab.Hosts[1].Exec(ctx, "mount -o remount,size=8k /etc/pacemaker"); err != nil {
			t.Fatal(err)
		}
		_, err := Rotate(ctx, e, Request{Authkey: true})
		if got := failedHosts(err); len(got) != 1 || got[0] != "host01:failed" || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("rotate with host01's disk full: %v", err)
		}
		if after := pacemakerDirs(t, lab, 0, 1, 2); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("nodes changed, or a temp file stayed:\n%v\n%v", before, after)
		}
		lab.Hosts[1].Exec(ctx, "mount -o remount,size=4m /etc/pacemaker")
		if _, err := Rotate(ctx, e, Request{Authkey: true}); err != nil {
			t.Fatalf("rotate after recovery: %v", err)
		}
	})
	t.Run("slow", func(t *testing.T) {
		e, lab := faultLab(t, sshlab.Options{}, 2*time.Second)
		before := pacemakerDirs(t, lab, 0, 2)
		lab.Hosts[1].Stop()
		lab.Hosts[1].SetSlow(3 * time.Second)
		if err := lab.Hosts[1].Restart(); err != nil {
			t.Fatal(err)
		}
		_, err := Rotate(ctx, e, Request{CIB: true})
		if got := failedHosts(err); len(got) != 1 || !strings.HasPrefix(got[0], "host01:") || !strings.Contains(err.Error(), "no answer within 2s") {
			t.Fatalf("rotate with host01 too slow: %v", err)
		}
		if after := pacemakerDirs(t, lab, 0, 2); after[0] != before[0] || after[2] != before[2] {
			t.Errorf("a node changed although host01 timed out")
		}
	})
	t.Run("sshd dies mid-run", func(t *testing.T) {
		e, lab := faultLab(t, sshlab.Options{}, time.Minute)
		before := pacemakerDirs(t, lab, 0, 2)
		lab.Hosts[1].Stop()
		lab.Hosts[1].SetSlow(time.Second)
		if err := lab.Hosts[1].Restart(); err != nil {
			t.Fatal(err)
		}
		go func() { time.Sleep(400 * time.Millisecond); lab.Hosts[1].Stop() }()
		_, err := Rotate(ctx, e, Request{CIB: true})
		if got := failedHosts(err); len(got) != 1 || !strings.HasPrefix(got[0], "host01:") {
			t.Fatalf("rotate while host01's sshd dies: %v", err)
		}
		if after := pacemakerDirs(t, lab, 0, 2); after[0] != before[0] || after[2] != before[2] {
			t.Errorf("a node changed although host01 died mid-run")
		}
		lab.Hosts[1].SetSlow(0)
		if err := lab.Hosts[1].Restart(); err != nil {
			t.Fatal(err)
		}
		if _, err := Push(ctx, e, nil); err != nil {
			t.Fatalf("push after recovery: %v", err)
		}
		if st, err := Status(ctx, e, StatusRequest{}); err != nil {
			t.Errorf("status after recovery: %v\n%+v", err, st.Hosts)
		}
	})
}

func mustVersion(t *testing.T, e *Env, id keystore.ID) int {
	t.Helper()
	c, err := e.Store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.Version.Version
}
