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
	out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitUsage || !strings.Contains(string(out), "unknown operation no-such-op") {
		t.Errorf("ran %v: %s", err, out)
	}
	for _, s := range []string{"", "plain", "it's", `'\''`, "$(id) `id` \"q\"\n"} {
		out, err := exec.Command("sh", "-c", "printf %s "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q) came back as %q, %v", s, out, err)
		}
	}
}
