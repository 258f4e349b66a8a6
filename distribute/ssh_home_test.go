package distribute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// hookPrograms are the programs the remote script may run.
var hookPrograms = []string{"getent", "stat", "mkdir", "chown", "chmod", "dd", "mv", "rm", "sync", "sha256sum", "chroot", "grep"}

// hookWrapper runs in place of each of hookPrograms on a lab host while
// $H/state/on exists. It logs who runs what, and before the AT-th program
// of an operation (counted across its sessions) it swaps alice's
// ~/.pcmkeys for a symlink to /root/canarydir, as alice: an attacker who
// wins the race at exactly that moment. Then it runs the real program.
const hookWrapper = `#!/bin/sh
H=%s
n=${0##*/}
if [ -e "$H/state/on" ]; then
	printf '%%s %%s %%s\n' "$(id -u)" "$n" "$(printf '%%s ' "$@" | tr '\n' ' ')" >>"$H/state/log"
	printf x >>"$H/state/count"
	if [ "$(wc -c <"$H/state/count")" -ge "$(cat "$H/state/at")" ] && "$H/real/mkdir" "$H/state/swapped" 2>/dev/null; then
		swap='"$1/real/mv" /home/alice/.pcmkeys /home/alice/.pcmkeys.real && ln -s /root/canarydir /home/alice/.pcmkeys'
		if [ "$(id -u)" = 0 ]; then
			"$H/real/chroot" --userspec=%d:%d / sh -c "$swap" swap "$H"
		else
			sh -c "$swap" swap "$H"
		fi
	fi
fi
exec "$H/real/$n" "$@"
`

// installHooks puts hookWrapper over hookPrograms on host, in its own mount
// namespace, and returns the hook directory (on the machine's /tmp, which
// lab hosts share).
func installHooks(t *testing.T, lab *sshlab.Lab, host *sshlab.Host) string {
	t.Helper()
	dir := filepath.Join(lab.Dir, "hook-"+host.Name)
	for _, d := range []string{dir, dir + "/real", dir + "/wrap", dir + "/state"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(dir+"/state", 0o777) // alice logs too
	wrapper := fmt.Sprintf(hookWrapper, dir, sshlab.UIDAlice, sshlab.UIDAlice)
	var mounts strings.Builder
	mounts.WriteString("set -e\n")
	for _, p := range hookPrograms {
		if err := os.WriteFile(filepath.Join(dir, "wrap", p), []byte(wrapper), 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&mounts, "p=$(command -v %s); cp \"$p\" %s/real/%s; mount --bind %s/wrap/%s \"$p\"\n", p, dir, p, dir, p)
	}
	onLab(t, host, mounts.String())
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mi, []byte(dir)) {
		t.Fatal("the hooks leaked out of the lab host's mount namespace")
	}
	return dir
}

// watchDir reports every inotify event on a directory (and the files in
// it) from now on.
func watchDir(t *testing.T, path string) func() []string {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_ALL_EVENTS); err != nil {
		t.Fatalf("watch %s: %v", path, err)
	}
	return func() []string {
		var evs []string
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if n <= 0 || err != nil {
				return evs
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
				evs = append(evs, fmt.Sprintf("mask %#x on %q", ev.Mask, name))
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}

// TestSSHHomeSwapRace: inside alice's home nothing runs as root. For
// every operation and every moment between two of the programs the
// remote script runs, alice replaces ~/.pcmkeys by a symlink to a
// directory only root may enter: nothing there is opened, listed,
// fsynced or removed, and no program runs as root on a path in her home
// (where it would follow her links) but the one that becomes her.
func TestSSHHomeSwapRace(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{})
	host := lab.Hosts[0]
	h := labOpen(t, labDialer(t, lab, nil), host)
	hook := installHooks(t, lab, host)
	onLab(t, host, `set -e; mkdir -m 700 /root/canarydir; cd /root/canarydir
printf canary > prod.key; printf canary > .prod.key.pcmkeys-0123456789abcdef; chmod 600 prod.key .prod.key.pcmkeys-0123456789abcdef`)
	canary := func() string { return onLab(t, host, "ls -la --time-style=full-iso /root/canarydir") }
	before := canary()
	events := watchDir(t, fmt.Sprintf("/proc/%d/root/root/canarydir", host.PID()))
	ctx := context.Background()
	f := File{Path: "~/.pcmkeys/prod.key", Content: []byte(strings.Repeat("0f", 32)), Owner: "alice", Mode: 0o600}
	ops := []struct {
		name string
		run  func() error
	}{
		{"write", func() error { return Write(ctx, h, f) }},
		{"stage and commit", func() error {
			s, err := h.Stage(ctx, f)
			if err != nil {
				return err
			}
			return errors.Join(s.Commit(ctx), s.Abort(ctx))
		}},
		{"stage and abort", func() error {
			s, err := h.Stage(ctx, withMode(f, 0o400))
			if err != nil {
				return err
			}
			return s.Abort(ctx)
		}},
		{"sweep", func() error { _, err := h.Sweep(ctx, f.Path, "alice"); return err }},
		{"remove", func() error { return h.Remove(ctx, f.Path, "alice") }},
		{"inspect", func() error { _, err := h.Inspect(ctx, f.Path, "alice"); return err }},
		{"read", func() error { _, err := h.Read(ctx, f.Path, "alice"); return err }},
	}
	state := func(name string) string { return filepath.Join(hook, "state", name) }
	for _, op := range ops {
		// Each kind of failure is reported once per operation, at the
		// first moment it shows.
		reached, rootInHome := false, false
		for at := 1; ; at++ {
			os.Remove(state("on"))
			onLab(t, host, `set -e; rm -rf /home/alice/.pcmkeys /home/alice/.pcmkeys.real
mkdir -m 700 /home/alice/.pcmkeys; cd /home/alice/.pcmkeys
printf old > prod.key; printf left > .prod.key.pcmkeys-0123456789abcdef; chmod 600 prod.key .prod.key.pcmkeys-0123456789abcdef
chown -R alice:alice /home/alice/.pcmkeys`)
			os.Remove(state("swapped"))
			for name, content := range map[string]string{"log": "", "count": "", "at": fmt.Sprint(at), "on": ""} {
				if err := os.WriteFile(state(name), []byte(content), 0o666); err != nil {
					t.Fatal(err)
				}
				os.Chmod(state(name), 0o666)
			}
			err := op.run()
			os.Remove(state("on"))
			log, _ := os.ReadFile(state("log"))
			if evs := events(); len(evs) > 0 && !reached {
				reached = true
				t.Errorf("%s, alice's link in place before program %d: root reached /root/canarydir: %v (error: %v)\nprograms run (uid, program, arguments):\n%.3000s", op.name, at, evs, err, log)
			}
			for _, line := range strings.Split(string(log), "\n") {
				if strings.HasPrefix(line, "0 ") && strings.Contains(line, "/home/alice") && !rootInHome &&
					!strings.HasPrefix(line, fmt.Sprintf("0 chroot --userspec=%d:", sshlab.UIDAlice)) {
					rootInHome = true
					t.Errorf("%s: root ran a program on a path in alice's home: %.300s", op.name, line)
				}
			}
			if _, err := os.Stat(state("swapped")); err != nil { // the operation ran fewer programs
				if at < 4 {
					t.Errorf("%s ran %d hooked programs, want at least 3: are the hooks in place?", op.name, at-1)
				}
				t.Logf("%s: alice's link tried before each of %d programs", op.name, at-1)
				break
			}
		}
	}
	if after := canary(); after != before {
		t.Errorf("/root/canarydir changed:\n%s\n---\n%s", before, after)
	}
}

// TestSSHHomeFileWithSudo: a client file in a home is written, inspected
// and swept through sudo too, whose PATH may lack /usr/sbin (chroot).
func TestSSHHomeFileWithSudo(t *testing.T) {
	lab := sshlab.Start(t, 1, sshlab.Options{SudoOnly: []int{0}})
	h := labOpen(t, labDialer(t, lab, func(c *SSHConfig) { c.User, c.Sudo = "deploy", true }), lab.Hosts[0])
	ctx := context.Background()
	f := File{Path: "~/.pcmkeys/prod.key", Content: []byte(strings.Repeat("0f", 32)), Owner: "alice", Mode: 0o600}
	if err := Write(ctx, h, f); err != nil {
		t.Fatal(err)
	}
	onLab(t, lab.Hosts[0], "cd /home/alice/.pcmkeys && touch .prod.key.pcmkeys-0123456789abcdef && chown alice: .prod.key.pcmkeys-0123456789abcdef")
	if n, err := h.Sweep(ctx, f.Path, "alice"); n != 1 || err != nil {
		t.Errorf("sweep = %d, %v", n, err)
	}
	st, err := h.Inspect(ctx, f.Path, "alice")
	if want := regular("/home/alice/.pcmkeys/prod.key", "alice", "alice", sshlab.UIDAlice, sshlab.UIDAlice, 0o600, string(f.Content)); err != nil || st != want {
		t.Errorf("inspect = %+v, %v; want %+v", st, err, want)
	}
	if got := onLab(t, lab.Hosts[0], "ls -A /home/alice/.pcmkeys"); got != "prod.key\n" {
		t.Errorf("left in the directory: %q", got)
	}
}
