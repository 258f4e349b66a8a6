package distribute

import (
	"context"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// inspectRig is one transport with a way to shape its host's files: sh
// runs a script as root with R (the host's root prefix) and the users'
// ids in its environment.
type inspectRig struct {
	host                  Host
	sh                    func(t *testing.T, script string)
	hac, hacg, alice, bob int
}

func (r inspectRig) env() string {
	return fmt.Sprintf("HAC=%d HACG=%d ALICE=%d BOB=%d", r.hac, r.hacg, r.alice, r.bob)
}

func localRig(t *testing.T) inspectRig {
	requireRoot(t)
	l := newLab(t)
	r := inspectRig{host: l.host(t), hac: l.hacluster, hacg: l.haclient, alice: l.alice, bob: l.bob}
	r.sh = func(t *testing.T, script string) {
		t.Helper()
		cmd := exec.Command("sh", "-ec", "export R="+shellQuote(l.root)+" "+r.env()+"\n"+script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", script, err, out)
		}
	}
	return r
}

func sshRig(t *testing.T) inspectRig {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	r := inspectRig{host: labOpen(t, labDialer(t, lab, nil), host), hac: sshlab.UIDHacluster, hacg: sshlab.GIDHaclient, alice: sshlab.UIDAlice, bob: sshlab.UIDBob}
	r.sh = func(t *testing.T, script string) {
		t.Helper()
		remote(t, host, "set -e; export R= "+r.env()+"\n"+script)
	}
	return r
}

// TestInspectConformance: Local and SSH report the same FileState for
// every kind of thing at a target.
func TestInspectConformance(t *testing.T) {
	const server = "/etc/pacemaker/authkey"
	const F = "$R/etc/pacemaker/authkey"
	type ids struct{ hac, hacg, alice, bob int }
	rows := []struct {
		name, path, owner, setup string
		want                     func(ids) FileState
	}{
		{"missing", server, "hacluster", "", func(ids) FileState { return FileState{Path: server} }},
		{"regular ok", server, "hacluster", "printf k > " + F + "; chown $HAC:$HACG " + F + "; chmod 600 " + F,
			func(i ids) FileState { return regular(server, "hacluster", "haclient", i.hac, i.hacg, 0o600, "k") }},
		{"wrong mode 0640", server, "hacluster", "printf k > " + F + "; chown $HAC:$HACG " + F + "; chmod 640 " + F,
			func(i ids) FileState { return regular(server, "hacluster", "haclient", i.hac, i.hacg, 0o640, "k") }},
		{"g+s 02600", server, "hacluster", "printf k > " + F + "; chown $HAC:$HACG " + F + "; chmod 2600 " + F,
			func(i ids) FileState {
				return regular(server, "hacluster", "haclient", i.hac, i.hacg, 0o600|fs.ModeSetgid, "k")
			}},
		{"setuid and sticky 05600", server, "hacluster", "printf k > " + F + "; chown $HAC:$HACG " + F + "; chmod 5600 " + F,
			func(i ids) FileState {
				return regular(server, "hacluster", "haclient", i.hac, i.hacg, 0o600|fs.ModeSetuid|fs.ModeSticky, "k")
			}},
		{"symlink", server, "hacluster", "ln -s /etc/passwd " + F,
			func(ids) FileState {
				return FileState{Path: server, Exists: true, Symlink: true, Owner: "root", Group: "root", Mode: 0o777, Size: int64(len("/etc/passwd"))}
			}},
		{"FIFO", server, "hacluster", "mkfifo -m 600 " + F,
			func(ids) FileState {
				return FileState{Path: server, Exists: true, Owner: "root", Group: "root", Mode: 0o600}
			}},
		{"directory", server, "hacluster", "mkdir -m 700 " + F,
			func(ids) FileState {
				return FileState{Path: server, Exists: true, Owner: "root", Group: "root", Mode: 0o700}
			}},
		{"too-large sparse file", server, "hacluster", "truncate -s 4G " + F + "; chown $HAC:$HACG " + F + "; chmod 600 " + F,
			func(i ids) FileState {
				return FileState{Path: server, Exists: true, Regular: true, Owner: "hacluster", Group: "haclient", UID: i.hac, GID: i.hacg, Mode: 0o600, Size: 4 << 30, TooLarge: true}
			}},
		{"owned by another user", server, "hacluster", "printf k > " + F + "; chown $BOB:$BOB " + F + "; chmod 600 " + F,
			func(i ids) FileState { return regular(server, "bob", "bob", i.bob, i.bob, 0o600, "k") }},
		{"client file in a home", "~/.pcmkeys/k", "alice", "mkdir -m 700 $R/home/alice/.pcmkeys; printf c > $R/home/alice/.pcmkeys/k; chmod 600 $R/home/alice/.pcmkeys/k; chown -R $ALICE:$ALICE $R/home/alice/.pcmkeys",
			func(i ids) FileState {
				return regular("/home/alice/.pcmkeys/k", "alice", "alice", i.alice, i.alice, 0o600, "c")
			}},
		{"missing directory in a home", "~/nodir/k", "alice", "",
			func(ids) FileState { return FileState{Path: "/home/alice/nodir/k"} }},
	}
	reset := "find $R/etc/pacemaker -mindepth 1 -delete; chown 0:$HACG $R/etc/pacemaker; chmod 750 $R/etc/pacemaker; rm -rf $R/home/alice/.pcmkeys $R/home/alice/nodir"
	for _, rig := range []struct {
		name string
		make func(*testing.T) inspectRig
	}{{"Local", localRig}, {"SSH", sshRig}} {
		t.Run(rig.name, func(t *testing.T) {
			r := rig.make(t)
			r.sh(t, "mkdir -p $R/etc/pacemaker")
			for _, row := range rows {
				t.Run(row.name, func(t *testing.T) {
					r.sh(t, reset)
					if row.setup != "" {
						r.sh(t, row.setup)
					}
					got, err := r.host.Inspect(context.Background(), row.path, row.owner)
					if err != nil {
						t.Fatal(err)
					}
					if got.Exists && !got.Regular && !got.Symlink && got.Mode&0o777 == 0o700 {
						got.Size = 0 // a directory's size depends on its file system
					}
					if want := row.want(ids{r.hac, r.hacg, r.alice, r.bob}); got != want {
						t.Errorf("inspect:\n got %+v\nwant %+v", got, want)
					}
				})
			}
			t.Run("read of a too-large file", func(t *testing.T) {
				r.sh(t, reset+"; truncate -s 4G "+F+"; chown $HAC:$HACG "+F+"; chmod 600 "+F)
				_, err := r.host.Read(context.Background(), server, "hacluster")
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("larger than %d bytes", maxReadBack)) {
					t.Errorf("read: %v", err)
				}
			})
		})
	}
}

func regular(path, owner, group string, uid, gid int, mode fs.FileMode, content string) FileState {
	return FileState{Path: path, Exists: true, Regular: true, Owner: owner, Group: group, UID: uid, GID: gid, Mode: mode, Size: int64(len(content)), SHA256: hashHex([]byte(content))}
}

// TestScriptReadLimit: the remote script caps reads at the same size as
// the local transport.
func TestScriptReadLimit(t *testing.T) {
	if !strings.Contains(remoteScript, fmt.Sprintf("\nmax=%d\n", maxReadBack)) {
		t.Errorf("ssh_script.sh's max is not maxReadBack (%d)", maxReadBack)
	}
}

// TestParseInspect: answers the remote side should never give are
// refused, not half-read.
func TestParseInspect(t *testing.T) {
	sum := hashHex([]byte("k"))
	for _, out := range []string{
		"", "missing\n", "/x\nother\n", "/x\nfile 0 0 600 1 root root\n", "/x\nfile 0 0 600 1 root root zz\n",
		"/x\nfile 0 0 99 1 root root " + sum + "\n", "/x\nfile 0 0 17777 1 root root " + sum + "\n",
		"/x\nfile 0 0 600 99999999999 root root " + sum + "\n", "/x\nsymlink 0 0 777 1 root\n", "x\nmissing\n",
	} {
		var st FileState
		if err := parseInspect(out, &st); err == nil {
			t.Errorf("accepted %q as %+v", out, st)
		}
	}
	var st FileState
	if err := parseInspect("/x\nfile 5 6 600 1 UNKNOWN UNKNOWN -\n", &st); err != nil || st.Owner != "5" || st.Group != "6" || st.SHA256 != "" {
		t.Errorf("unknown owner: %+v %v", st, err)
	}
}
