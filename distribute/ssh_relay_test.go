package distribute

import (
	"os/exec"
	"os/user"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/distribute/internal/remote"
)

// TestRelayOwnersRun: root works a command after an owner's run (a
// batch), or goes past it (a chain), only if every record of that run
// ended well as the Go side reads the answers, whatever the run says and
// exits: an owner's process (whoever controls the account controls its
// run) may answer twice for a record, after its end, with an err before
// an end 0, or under a number written otherwise, and none of it makes a
// record that failed count as done. The owner's run is a stand-in that
// says the case's lines and exits 0; the script is the one sent, run here
// as this user, the owner of the two records.
func TestRelayOwnersRun(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if me.HomeDir == "" || me.HomeDir == "/" {
		t.Skipf("%s has no home directory of its own", me.Username)
	}
	const fake = "asowner1() {\n"
	if strings.Count(remote.Script, fake) != 1 {
		t.Fatal("the script has no asowner1 to stand in for")
	}
	for _, c := range []struct {
		name  string
		lines []string
		ran   bool
	}{
		{"both ended well", []string{":0 end 0", ":1 end 0"}, true},
		{"both ended well, said more", []string{":0 at inspect", "something on stderr", ":0 end 0", ":1 state missing", ":1 end 0"}, true},
		{"the first failed", []string{":0 err 10 a link", ":0 end 10", ":1 end 0"}, false},
		{"the second failed", []string{":0 end 0", ":1 end 1"}, false},
		{"the second never ended", []string{":0 end 0", ":1 at inspect"}, false},
		{"nothing said", nil, false},
		{"one ended well twice", []string{":0 end 0", ":0 end 0"}, false},
		{"failed, then ended well", []string{":0 end 1", ":0 end 0", ":1 end 0"}, false},
		{"an err, then end 0", []string{":0 err 10 a link", ":0 end 0", ":1 end 0"}, false},
		{"an err without a code, then end 0", []string{":0 err", ":0 end 0", ":1 end 0"}, false},
		{"an end written otherwise", []string{":00 end 0", ":0 end 1", ":1 end 0"}, false},
		{"an end with more", []string{":0 end 0 0", ":1 end 0"}, false},
		{"an end with more, then end 0", []string{":0 end 0 0", ":0 end 0", ":1 end 0"}, false},
		{"an end without a code, then end 0", []string{":0 end", ":0 end 0", ":1 end 0"}, false},
		{"another record's end", []string{":0 end 0", ":1 end 0", ":2 end 0", ":2 err 1 x"}, true},
		{"another record's end instead", []string{":0 end 0", ":2 end 0"}, false},
	} {
		for _, form := range []string{"batch", "chain"} {
			t.Run(c.name+"/"+form, func(t *testing.T) {
				var said strings.Builder
				for _, l := range c.lines {
					said.WriteString(" " + remote.Quote(l))
				}
				script := strings.Replace(remote.Script, fake, fake+"\tprintf '%s\\n'"+said.String()+"\n\treturn 0\n", 1)
				args := []string{"-c", `eval "$1"`, "pcmkeys", script, form, "", "", "0", ""}
				for _, r := range []record{
					{op: "inspect", path: "~/.pcmkeys/a", owner: me.Username, mode: "600"},
					{op: "inspect", path: "~/.pcmkeys/b", owner: me.Username, mode: "600"},
					{op: "run", path: "echo ran"},
				} {
					args = append(args, r.op, r.path, r.owner, r.group, r.mode, r.sum, "0", r.tmp)
				}
				out, _ := exec.Command("sh", args...).Output()
				var b batchOut
				b.answers = make([]answer, 3)
				b.parse(string(out))
				h := &SSHHost{name: "here"}
				well := b.err(h, 0, "inspect", "a", nil) == nil && b.err(h, 1, "inspect", "b", nil) == nil
				ran, err := b.exited(2, nil)
				if ran == "ran\n" != c.ran || (err == nil) != c.ran {
					t.Errorf("the command: %q, %v, want run %v; the script said\n%s", ran, err, c.ran, out)
				}
				if well != c.ran {
					t.Errorf("the Go side reads the owner's records as ended well: %v, want %v; the script said\n%s", well, c.ran, out)
				}
			})
		}
	}
}
