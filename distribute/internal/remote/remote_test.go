package remote

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestScriptReadLimit: the script caps reads at MaxRead, as the Go side.
func TestScriptReadLimit(t *testing.T) {
	if !strings.Contains(Script, fmt.Sprintf("\nmax=%d\n", MaxRead)) {
		t.Errorf("script.sh's max is not MaxRead (%d)", MaxRead)
	}
}

// TestCommand: a local sh given the command line runs the script with
// the arguments as they were, quotes and spaces included.
func TestCommand(t *testing.T) {
	cmd := Command("no-such-op", "", "/a b/it's", "root", "", "600", "")
	if len(cmd) > 1000 {
		t.Errorf("the command line is %d bytes: the script belongs on stdin", len(cmd))
	}
	run := exec.Command("sh", "-c", cmd)
	run.Stdin = Input(nil)
	out, err := run.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitUsage || !strings.Contains(string(out), "unknown operation no-such-op") {
		t.Errorf("ran %v: %s", err, out)
	}
	// A script cut short is not run, not even its beginning.
	for _, cut := range []int{0, 1, len(Script) / 2, len(Script) - 2} {
		run := exec.Command("sh", "-c", cmd)
		run.Stdin = strings.NewReader(Script[:cut])
		out, err := run.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitUsage || strings.TrimSpace(string(out)) != "pcmkeys: the script arrived cut short" {
			t.Errorf("the script cut at %d of %d bytes: %v: %s", cut, len(Script), err, out)
		}
	}
	for _, s := range []string{"", "plain", "it's", `'\''`, "$(id) `id` \"q\"\n"} {
		out, err := exec.Command("sh", "-c", "printf %s "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q) came back as %q, %v", s, out, err)
		}
	}
}

// TestScriptCompact: the script runs without its comments, and only they
// (and blank lines) are dropped.
func TestScriptCompact(t *testing.T) {
	full := head + "\n" + protocol + "\n" + batch
	var code []string
	for _, line := range strings.Split(full, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			code = append(code, line)
		}
	}
	if Script != strings.Join(code, "\n")+"\n"+scriptEnd+"\n" {
		t.Error("Script is not the three parts' code lines and its end")
	}
	if strings.Contains(Script, "\n#") || len(Script) > len(full)*2/3 {
		t.Errorf("the script sent holds comments (%d bytes of %d)", len(Script), len(full))
	}
}
