package rotate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/internal/testroot"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// cluster is a test cluster: two local nodes and a workstation, each with
// its own root, and a file store.
type cluster struct {
	env   *Env
	roots map[string]*testroot.Root
	store string // the file store's directory, or "" for Vault
}

// forEachStore runs f once with the file store and once with Vault.
func forEachStore(t *testing.T, f func(t *testing.T, store string)) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { f(t, kind) })
	}
}

func newCluster(t *testing.T, mode string, extraYAML string) *cluster {
	return newClusterIn(t, "file", mode, extraYAML)
}

func newClusterIn(t *testing.T, storeKind, mode string, extraYAML string) *cluster {
	t.Helper()
	c := &cluster{roots: map[string]*testroot.Root{}}
	for _, h := range []string{"node1", "node2", "ws1"} {
		c.roots[h] = testroot.New(t)
	}
	dir := t.TempDir()
	if storeKind == "file" {
		c.store = filepath.Join(dir, "store")
	}
	doc := fmt.Sprintf(`cluster: test
store: %s
identity_mode: %s
cib: {port: 5403}
nodes:
  - {name: node1, local: true, root: %s}
  - {name: node2, local: true, root: %s}
clients:
  - {name: ws1, local: true, root: %s}
%s`, storeYAML(t, storeKind, dir), mode, c.roots["node1"].Dir, c.roots["node2"].Dir, c.roots["ws1"].Dir, extraYAML)
	cfg, err := config.Parse([]byte(doc), "/test/pcmkeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(context.Background(), cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	c.env = &Env{Config: cfg, Store: st, Operator: "tester", Parallel: 4}
	return c
}

func (c *cluster) read(t *testing.T, host, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(c.roots[host].Path(p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c *cluster) key(t *testing.T, id keystore.ID) keystore.Credential {
	t.Helper()
	cred, err := c.env.Store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func assertOwnerMode(t *testing.T, p string, uid, gid int, mode fs.FileMode) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != uid || int(st.Gid) != gid || fs.FileMode(st.Mode&0o7777) != mode || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("%s is %d:%d %o, want %d:%d %o", p, st.Uid, st.Gid, st.Mode, uid, gid, mode)
	}
}

func TestInitShared(t *testing.T) { forEachStore(t, testInitShared) }

func testInitShared(t *testing.T, store string) {
	c := newClusterIn(t, store, "shared", "")
	ctx := context.Background()
	rep, err := Init(ctx, c.env)
	if err != nil {
		t.Fatal(err)
	}
	// The authkey, the shared key and hacluster's password, all new.
	if len(rep.Credentials) != 3 || !rep.Credentials[0].Created || !rep.Credentials[1].Created || rep.Credentials[2].ID != "password/hacluster" || !rep.Credentials[2].Created {
		t.Errorf("credentials = %+v", rep.Credentials)
	}
	psk := c.key(t, keystore.CIB("hacluster"))
	auth := c.key(t, keystore.AuthkeyID)
	if len(psk.Key) != 32 || len(auth.Key) != 4096 {
		t.Errorf("key sizes %d and %d", len(psk.Key), len(auth.Key))
	}
	for _, node := range []string{"node1", "node2"} {
		r := c.roots[node]
		entries, err := credfile.ParseCIBCredentials(c.read(t, node, "etc/pacemaker/cib-credentials"))
		if err != nil || len(entries) != 1 || entries[0].Identity != "hacluster" || !entries[0].Key.Equal(psk.Key) {
			t.Errorf("%s cib-credentials: %v", node, err)
		}
		if !bytes.Equal(c.read(t, node, "etc/pacemaker/authkey"), auth.Key) {
			t.Errorf("%s authkey differs from the store", node)
		}
		assertOwnerMode(t, r.Path("etc/pacemaker/cib-credentials"), r.Hacluster, r.Haclient, 0o600)
		assertOwnerMode(t, r.Path("etc/pacemaker/authkey"), r.Hacluster, r.Haclient, 0o600)
	}
	if _, err := os.Lstat(c.roots["ws1"].Path("etc/pacemaker")); !os.IsNotExist(err) {
		t.Error("init wrote server files to a client")
	}
	// Again: nothing new, everything in sync.
	rep, err = Init(ctx, c.env)
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range rep.Credentials {
		if cr.Created {
			t.Errorf("second init created %s", cr.ID)
		}
	}
	for _, h := range rep.Hosts {
		for _, f := range h.Files {
			if f.Action != ActionInSync {
				t.Errorf("second init: %s %s %s", h.Host, f.Path, f.Action)
			}
		}
	}
}

func TestInitKeepsForeignFile(t *testing.T) {
	c := newCluster(t, "shared", "")
	r := c.roots["node2"]
	if err := os.MkdirAll(r.Path("etc/pacemaker"), 0o750); err != nil {
		t.Fatal(err)
	}
	foreign := []byte("hacluster:" + strings.Repeat("ee", 32) + "\n")
	if err := os.WriteFile(r.Path("etc/pacemaker/cib-credentials"), foreign, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Init(context.Background(), c.env)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.read(t, "node2", "etc/pacemaker/cib-credentials"), foreign) {
		t.Error("init replaced a cib-credentials file it did not write")
	}
	var kept bool
	for _, h := range rep.Hosts {
		for _, f := range h.Files {
			kept = kept || (h.Host == "node2" && f.Action == ActionKept)
		}
	}
	if !kept {
		t.Errorf("report does not say the file was kept: %+v", rep.Hosts)
	}
}

func TestOnboardShared(t *testing.T) { forEachStore(t, testOnboardShared) }

func testOnboardShared(t *testing.T, store string) {
	c := newClusterIn(t, store, "shared", "")
	ctx := context.Background()
	if _, err := Init(ctx, c.env); err != nil {
		t.Fatal(err)
	}
	rep, err := Onboard(ctx, c.env, OnboardRequest{User: "alice", Clients: []string{"ws1"}})
	if err != nil {
		t.Fatal(err)
	}
	psk := c.key(t, keystore.CIB("hacluster"))
	ws := c.roots["ws1"]
	k, err := credfile.ParseClientKey(c.read(t, "ws1", "home/alice/.pcmkeys/test.key"))
	if err != nil || !k.Equal(psk.Key) {
		t.Fatalf("client key: %v", err)
	}
	assertOwnerMode(t, ws.Path("home/alice/.pcmkeys/test.key"), ws.Alice, ws.Alice, 0o600)
	assertOwnerMode(t, ws.Path("home/alice/.pcmkeys/test.env"), ws.Alice, ws.Alice, 0o600)
	env := string(c.read(t, "ws1", "home/alice/.pcmkeys/test.env"))
	for _, want := range []string{"CIB_server='node1'", "CIB_port='5403'", "CIB_user='hacluster'", "CIB_encrypted='true'", "CIB_key_file='/home/alice/.pcmkeys/test.key'"} {
		if !strings.Contains(env, want) {
			t.Errorf("env file lacks %s:\n%s", want, env)
		}
	}
	if rep.ClientEnv == nil || rep.ClientEnv.User != "hacluster" {
		t.Errorf("report env = %+v", rep.ClientEnv)
	}
	a, err := c.env.Store.GetAdmin(ctx, "alice")
	if err != nil || a.Identity != "hacluster" || len(a.Clients) != 1 || a.Clients[0].Host != "ws1" || a.Clients[0].KeyFile != "~/.pcmkeys/test.key" || a.Clients[0].PasswordFile != "~/.pcmkeys/test.passwd" {
		t.Errorf("admin record = %+v, %v", a, err)
	}
	pw := c.key(t, "password/hacluster")
	if got := string(c.read(t, "ws1", "home/alice/.pcmkeys/test.passwd")); got != string(pw.Key.PasswordText())+"\n" {
		t.Error("alice's password file does not hold hacluster's password")
	}
	assertOwnerMode(t, ws.Path("home/alice/.pcmkeys/test.passwd"), ws.Alice, ws.Alice, 0o600)
	if !strings.Contains(env, "IFS= read -r CIB_passwd < '/home/alice/.pcmkeys/test.passwd'") {
		t.Errorf("env file does not read CIB_passwd from the password file:\n%s", env)
	}

	// A rerun writes nothing in sync and leaves the record alone (issue 12).
	rep, err = Onboard(ctx, c.env, OnboardRequest{User: "alice", Clients: []string{"ws1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range rep.Hosts {
		for _, f := range h.Files {
			if f.Action != ActionInSync {
				t.Errorf("rerun: %s on %s %s, want %q", f.Path, h.Host, f.Action, ActionInSync)
			}
		}
	}
	if b, err := c.env.Store.GetAdmin(ctx, "alice"); err != nil || b.Revision != a.Revision {
		t.Errorf("rerun rewrote the record: revision %d -> %d (%v)", a.Revision, b.Revision, err)
	}
}

func TestOnboardPerUser(t *testing.T) { forEachStore(t, testOnboardPerUser) }

func testOnboardPerUser(t *testing.T, store string) {
	c := newClusterIn(t, store, "per-user", "")
	ctx := context.Background()
	if _, err := Init(ctx, c.env); err != nil {
		t.Fatal(err)
	}
	if _, err := c.env.Store.Get(ctx, keystore.CIB("hacluster")); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("per-user init made a shared key: %v", err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := Onboard(ctx, c.env, OnboardRequest{User: u, Clients: []string{"ws1"}, KeyFile: "~/keys/" + u + ".key"}); err != nil {
			t.Fatalf("onboard %s: %v", u, err)
		}
	}
	ka, kb := c.key(t, keystore.CIB("alice")), c.key(t, keystore.CIB("bob"))
	if ka.Key.Equal(kb.Key) {
		t.Fatal("alice and bob share a key in per-user mode")
	}
	for _, node := range []string{"node1", "node2"} {
		entries, err := credfile.ParseCIBCredentials(c.read(t, node, "etc/pacemaker/cib-credentials"))
		if err != nil || len(entries) != 2 || entries[0].Identity != "alice" || !entries[0].Key.Equal(ka.Key) || entries[1].Identity != "bob" || !entries[1].Key.Equal(kb.Key) {
			t.Errorf("%s cib-credentials has %d entries, %v", node, len(entries), err)
		}
	}
	k, err := credfile.ParseClientKey(c.read(t, "ws1", "home/bob/keys/bob.key"))
	if err != nil || !k.Equal(kb.Key) {
		t.Errorf("bob's client key: %v", err)
	}
	if env := string(c.read(t, "ws1", "home/bob/keys/bob.key.env")); !strings.Contains(env, "CIB_user='bob'") {
		t.Errorf("bob's env: %s", env)
	}
}

// TestOnboardRefusals: each bad request fails before anything is written,
// on any host or in the store.
func TestOnboardRefusals(t *testing.T) {
	cases := []struct {
		name string
		req  OnboardRequest
		want string
	}{
		{"unknown user on client", OnboardRequest{User: "mallory", Clients: []string{"ws1"}}, "user mallory does not exist on client host ws1"},
		{"unknown host", OnboardRequest{User: "alice", Clients: []string{"ws9"}}, `unknown host "ws9"`},
		{"bad user name", OnboardRequest{User: "al:ice", Clients: []string{"ws1"}}, "contains ':'"},
		{"newline in user", OnboardRequest{User: "alice\n", Clients: []string{"ws1"}}, "control character"},
		{"no client", OnboardRequest{User: "alice"}, "at least one client"},
		{"relative key file", OnboardRequest{User: "alice", Clients: []string{"ws1"}, KeyFile: "keys/k"}, "absolute or start with ~/"},
		{"dot-dot key file", OnboardRequest{User: "alice", Clients: []string{"ws1"}, KeyFile: "~/../bob/k"}, "'..'"},
	}
	forEachStore(t, func(t *testing.T, store string) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) { testOnboardRefusal(t, store, tc.req, tc.want) })
		}
	})
}

func testOnboardRefusal(t *testing.T, store string, req OnboardRequest, want string) {
	c := newClusterIn(t, store, "per-user", "")
	before := treeState(t, c)
	admins := storeState(t, c)
	_, err := Onboard(context.Background(), c.env, req)
	if !errors.Is(err, ErrBadInput) {
		t.Errorf("error %v is not bad input", err)
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v does not say %q", err, want)
	}
	if after := treeState(t, c); after != before {
		t.Errorf("a refused onboard changed something:\n%s\n---\n%s", before, after)
	}
	if after := storeState(t, c); after != admins {
		t.Errorf("a refused onboard changed the store: %s -> %s", admins, after)
	}
}

// storeState is the store's admins and the versions of every credential
// in it. The credentials are found around the store: the file store's
// directories, or the keys Vault lists under the cluster's prefix.
func storeState(t *testing.T, c *cluster) string {
	t.Helper()
	ctx := context.Background()
	admins, err := c.env.Store.ListAdmins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := []keystore.ID{keystore.AuthkeyID, keystore.Password("hacluster")}
	var names []string
	if s := c.env.Config.Store; s.Type == "vault" {
		sec, err := vaultSrv.Client(t).Logical().List(s.Mount + "/metadata/" + s.Prefix + "/cib")
		if err != nil {
			t.Fatal(err)
		}
		if sec != nil {
			for _, k := range sec.Data["keys"].([]any) {
				names = append(names, k.(string))
			}
		}
	} else {
		ents, _ := os.ReadDir(filepath.Join(c.store, "credentials", "cib"))
		for _, e := range ents {
			names = append(names, e.Name())
		}
	}
	for _, n := range names {
		ids = append(ids, keystore.CIB(n))
	}
	state := fmt.Sprintf("%d admins", len(admins))
	for _, id := range ids {
		hist, err := c.env.Store.History(ctx, id)
		if err != nil && !errors.Is(err, keystore.ErrNotFound) {
			t.Fatal(err)
		}
		state += fmt.Sprintf(" %s:%d", id, len(hist))
	}
	return state
}

// treeState lists every file in every root and the store.
func treeState(t *testing.T, c *cluster) string {
	t.Helper()
	var b strings.Builder
	var dirs []string
	if c.store != "" {
		dirs = append(dirs, c.store)
	}
	for _, h := range []string{"node1", "node2", "ws1"} {
		dirs = append(dirs, c.roots[h].Dir)
	}
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err == nil && de.Name() != "lock" && de.Name() != "lock.json" { // the lock is not data
				info, _ := de.Info()
				fmt.Fprintf(&b, "%s %v %d\n", p, info.Mode(), info.Size())
			}
			return nil
		})
	}
	return b.String()
}

func TestDryRunChangesNothing(t *testing.T) {
	c := newCluster(t, "per-user", "")
	c.env.DryRun = true
	before := treeState(t, c)
	rep, err := Init(context.Background(), c.env)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hosts) != 2 || rep.Hosts[0].Status != StatusPlanned || rep.Hosts[0].Files[0].Action != ActionWrite {
		t.Errorf("plan = %+v", rep.Hosts)
	}
	if _, err := Onboard(context.Background(), c.env, OnboardRequest{User: "alice", Clients: []string{"ws1"}}); err != nil {
		t.Fatal(err)
	}
	if after := treeState(t, c); after != before {
		t.Errorf("dry run changed something:\n%s\n---\n%s", before, after)
	}
}

func TestSSHHostReportedUnreachable(t *testing.T) {
	c := newCluster(t, "shared", "remote_nodes:\n  - {name: remote1, address: 127.0.0.1}\n")
	rep, err := Init(context.Background(), c.env)
	var pe *PartialError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Host != "remote1" || !errors.Is(err, ErrPartial) {
		t.Fatalf("err = %v", err)
	}
	ok := 0
	for _, h := range rep.Hosts {
		if h.Status == StatusOK {
			ok++
		}
	}
	if ok != 2 {
		t.Errorf("%d hosts ok, want the 2 local nodes", ok)
	}
}

// TestInitRepairsOwnMode (issue 12): init on a node whose file holds the
// store's own key with a looser mode writes it again with the policy's
// mode; a file with other content is kept (adopting it is import's job).
func TestInitRepairsOwnMode(t *testing.T) {
	c := newCluster(t, "shared", "")
	ctx := context.Background()
	if _, err := Init(ctx, c.env); err != nil {
		t.Fatal(err)
	}
	n1, n2 := c.roots["node1"], c.roots["node2"]
	os.Chmod(n1.Path("etc/pacemaker/authkey"), 0o640)
	os.WriteFile(n2.Path("etc/pacemaker/authkey"), bytes.Repeat([]byte{7}, 4096), 0o600)
	rep, err := Init(ctx, c.env)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]Action{}
	for _, h := range rep.Hosts {
		for _, f := range h.Files {
			actions[h.Host+" "+f.Path] = f.Action
		}
	}
	if a := actions["node1 /etc/pacemaker/authkey"]; a != ActionWritten {
		t.Errorf("node1's authkey with mode 0640: %q, want %q", a, ActionWritten)
	}
	assertOwnerMode(t, n1.Path("etc/pacemaker/authkey"), n1.Hacluster, n1.Haclient, 0o600)
	if a := actions["node2 /etc/pacemaker/authkey"]; a != ActionKept {
		t.Errorf("node2's authkey with other content: %q, want %q", a, ActionKept)
	}
}
