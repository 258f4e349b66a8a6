package rotate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// TestLabOnboardKeyFileRules (issue 9, finding 3): a key file goes only in
// the admin's own home or under policy.client_dirs, never onto a server
// file, another user's file, or a file pcmkeys did not write. Each refusal
// is bad input (exit 2) before anything is written: no record, no file,
// the nodes untouched.
func TestLabOnboardKeyFileRules(t *testing.T) {
	e, rl := newRevokeLab(t, "file", "shared", "policy: {client_dirs: [/srv/cib-keys]}")
	ctx := context.Background()
	if _, err := Init(ctx, e); err != nil {
		t.Fatal(err)
	}
	client := rl.lab.Hosts[2]
	// Files a hostile or careless admin prepared on host02.
	setup := `mkdir -p /srv/cib-keys /etc/profile.d
su alice -s /bin/sh -c 'echo notes > /home/alice/notes; mkdir -p /home/alice/.pcmkeys'
echo root > /home/alice/.pcmkeys/rootowned; chmod 600 /home/alice/.pcmkeys/rootowned
su bob -s /bin/sh -c 'mkdir -p /home/bob/.pcmkeys'`
	if out, err := client.Exec(ctx, setup); err != nil {
		t.Fatal(err, out)
	}
	before, _ := rl.lab.Hosts[0].Exec(ctx, "sha256sum /etc/pacemaker/*")
	for _, tc := range []struct{ keyFile, says string }{
		{"/etc/pacemaker/cib-credentials", "outside"},
		{"/etc/profile.d/zz.sh", "outside"},
		{"/home/bob/.pcmkeys/lab.key", "outside"},
		{"/srv/cib-keys/../../etc/x", "'..'"},
		{"~/my keys/lab.key", "whitespace"},
		{"~/.pcmkeys/lab\tkey", "whitespace"},
		{"~/" + strings.Repeat("a", 300), "longer"},
		{"~/notes", "pcmkeys did not write it"},
		{"~/.pcmkeys/rootowned", "does not own"},
	} {
		_, err := Onboard(ctx, e, OnboardRequest{User: "alice", Clients: []string{"host02"}, KeyFile: tc.keyFile})
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("--key-file %q: %v, want bad input saying %q", tc.keyFile, err, tc.says)
		}
		if _, err := e.Store.GetAdmin(ctx, "alice"); !errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("--key-file %q: alice was recorded: %v", tc.keyFile, err)
		}
	}
	out, _ := client.Exec(ctx, "cat /home/alice/notes /home/alice/.pcmkeys/rootowned; ls -A /home/alice/.pcmkeys /srv/cib-keys /etc/profile.d | grep -c -e lab -e zz")
	if out != "notes\nroot\n0\n" {
		t.Errorf("host02 changed after refused onboards:\n%s", out)
	}
	if after, _ := rl.lab.Hosts[0].Exec(ctx, "sha256sum /etc/pacemaker/*"); after != before {
		t.Error("a node's files changed after refused onboards")
	}

	// Allowed: a client_dirs path; then a changed path removes the old
	// files, and revoke removes the new ones.
	if out, err := client.Exec(ctx, "mkdir -p /srv/cib-keys && chmod 755 /srv/cib-keys"); err != nil {
		t.Fatal(err, out)
	}
	if _, err := Onboard(ctx, e, OnboardRequest{User: "alice", Clients: []string{"host02"}, KeyFile: "/srv/cib-keys/alice.key"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Onboard(ctx, e, OnboardRequest{User: "alice", Clients: []string{"host02"}, KeyFile: "~/.cib/lab.key"}); err != nil {
		t.Fatal(err)
	}
	if rl.exists(t, 2, "/srv/cib-keys/alice.key") || rl.exists(t, 2, "/srv/cib-keys/alice.key.env") || !rl.exists(t, 2, "/home/alice/.cib/lab.key") {
		t.Error("a changed key-file path: want the old files gone and the new one there")
	}
	a, err := e.Store.GetAdmin(ctx, "alice")
	if err != nil || len(a.Clients) != 1 || a.Clients[0].KeyFile != "~/.cib/lab.key" {
		t.Fatalf("alice's record: %+v %v", a, err)
	}
	if _, err := Revoke(ctx, e, []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	if rl.exists(t, 2, "/home/alice/.cib/lab.key") || rl.exists(t, 2, "/home/alice/.cib/lab.key.env") {
		t.Error("revoke left alice's files")
	}
	// A record naming a server file (written by an older pcmkeys) never
	// makes revoke delete it.
	if _, err := Onboard(ctx, e, OnboardRequest{User: "bob", Clients: []string{"host00"}}); err != nil {
		t.Fatal(err)
	}
	b, _ := e.Store.GetAdmin(ctx, "bob")
	b.Clients[0].KeyFile = "/etc/pacemaker/cib-credentials"
	if _, err := e.Store.PutAdmin(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := Revoke(ctx, e, []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	if !rl.exists(t, 0, "/etc/pacemaker/cib-credentials") {
		t.Error("revoking bob deleted the node's cib-credentials")
	}
}
