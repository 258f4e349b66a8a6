package hosttest

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/distribute"
)

// leftovers plants, in dir, the temporary files of authkey that either
// transport leaves when killed mid-write (.authkey + decimal digits on
// this machine, .authkey.pcmkeys- + hex over SSH, and such a name as a
// link, removed and never followed), and names that are not: another
// file's, a malformed suffix, a directory, a file of another name.
const leftovers = `cd "$R$1"
for f in .authkey123456 .authkey.pcmkeys-0123456789abcdef .authkeyx1 .authkey.pcmkeys- .authkey.pcmkeys-XYZ .cib-credentials42 keep; do
	printf x > "$f"
done
ln -s "$R/root/victim" .authkey.pcmkeys-aaaaaaaaaaaaaaaa
mkdir .authkey987
chown -R "$2" .`

// testSweep: Sweep removes exactly the leftovers of one target, on a
// server path and in a home, and a write sweeps its own target's.
func testSweep(t *testing.T, e env) {
	e.sh(t, `printf victim > "$R/root/victim"; mkdir -m 700 "$R/home/alice/.pcmkeys"`)
	const kept = ".authkey.pcmkeys-\n.authkey.pcmkeys-XYZ\n.authkey987\n.authkeyx1\n.cib-credentials42\nkeep\n"
	for _, c := range []struct{ dir, path, owner, chown string }{
		{"/etc/pacemaker", "/etc/pacemaker/authkey", "hacluster", "$ADMIN"},
		{"/home/alice/.pcmkeys", "~/.pcmkeys/authkey", "alice", "$ALICE:$ALICE"},
	} {
		e.sh(t, "set -- "+quote(c.dir)+" "+c.chown+"\n"+leftovers)
		n, err := e.h.Sweep(ctx, c.path, c.owner)
		if err != nil || n != 3 {
			t.Errorf("sweep %s = %d, %v; want 3", c.path, n, err)
		}
		if got := e.sh(t, `LC_ALL=C ls -A "$R"`+quote(c.dir)); got != kept {
			t.Errorf("after the sweep %s holds\n%swant\n%s", c.dir, got, kept)
		}
	}
	if got := e.sh(t, `cat "$R/root/victim"`); got != "victim" {
		t.Errorf("the link's target became %q", got)
	}
	if n, err := e.h.Sweep(ctx, "/etc/pacemaker/none/authkey", "hacluster"); n != 0 || err != nil {
		t.Errorf("sweep in a missing directory = %d, %v", n, err)
	}
	// A write sweeps its own target's leftovers, and only those.
	f := serverFile("k")
	if err := distribute.Write(ctx, e.h, withPath(f, "/etc/pacemaker/authkey")); err != nil {
		t.Fatal(err)
	}
	if got := e.sh(t, `LC_ALL=C ls -A "$R/etc/pacemaker"`); got != strings.Replace(kept, "\nkeep", "\nauthkey\nkeep", 1) {
		t.Errorf("after a write /etc/pacemaker holds\n%s", got)
	}
}

// testSweepThenAbort: what a killed run staged is swept by the next; the
// old run's abort, should it come, finds nothing and is no error.
func testSweepThenAbort(t *testing.T, e env) {
	for _, f := range []distribute.File{serverFile("k"), clientFile("alice", "c")} {
		s, err := e.h.Stage(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		n, err := e.h.Sweep(ctx, f.Path, f.Owner)
		if err != nil || n != 1 {
			t.Errorf("sweep of %s after a stage = %d, %v; want 1", f.Path, n, err)
		}
		if err := s.Abort(ctx); err != nil {
			t.Errorf("abort after the sweep: %v", err)
		}
	}
	if got := e.ls(t, "/etc/pacemaker") + e.ls(t, "/home/alice/.pcmkeys"); got != "" {
		t.Errorf("left behind: %q", got)
	}
}

// testModeNeverLooser: at no moment of a write is there a file in the
// target's directory, other than the old target, whose mode gives group
// or other any access or whose owner is neither the administrator nor
// the file's; after the rename the target has exactly the policy's mode.
// The directory is watched with inotify and every entry an event names is
// looked at at once; that the watch saw the temporary file come proves it
// was looking.
func testModeNeverLooser(t *testing.T, e env) {
	e.sh(t, `f=$R/etc/pacemaker/cib-credentials; echo old > "$f"; chmod 644 "$f"`)
	dir := e.fx.Path("/etc/pacemaker")
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_ATTRIB|unix.IN_MODIFY|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		t.Fatalf("watch %s: %v", dir, err)
	}
	type sighting struct {
		name string
		st   unix.Stat_t
	}
	stop := make(chan struct{})
	done := make(chan []sighting)
	go func() {
		var seen []sighting
		buf := make([]byte, 64<<10)
		for {
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 10)
			n, _ := unix.Read(fd, buf)
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
				off += unix.SizeofInotifyEvent + int(ev.Len)
				var st unix.Stat_t
				if unix.Lstat(dir+"/"+name, &st) == nil {
					seen = append(seen, sighting{name, st})
				} else if ev.Mask&unix.IN_CREATE != 0 {
					seen = append(seen, sighting{name: name})
				}
			}
			select {
			case <-stop:
				if n <= 0 {
					done <- seen
					return
				}
			default:
			}
		}
	}()
	files := []distribute.File{serverFile("first"), withMode(serverFile("second"), 0o400), serverFile("third")}
	for _, f := range files {
		if err := distribute.Write(ctx, e.h, f); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	seen := <-done
	temps, names := 0, []string{}
	for _, s := range seen {
		names = append(names, s.name)
		if s.name == "cib-credentials" {
			continue // the old 0644 file, then each written one: checked below
		}
		if strings.HasPrefix(s.name, ".cib-credentials") {
			temps++
		}
		if s.st.Ino == 0 {
			continue // gone before it could be looked at
		}
		uid, mode := int(s.st.Uid), fs.FileMode(s.st.Mode&0o7777)
		if mode&0o077 != 0 || (uid != e.fx.Admin && uid != e.fx.Hacluster) {
			t.Errorf("%s was there with mode %04o, owner %d", s.name, mode, uid)
		}
	}
	if temps < len(files) {
		t.Errorf("the watch saw %d temporary files for %d writes: was it watching? it saw %q", temps, len(files), names)
	}
	e.fileIs(t, files[2], files[2].Path, e.fx.Hacluster, e.fx.Haclient)
}
