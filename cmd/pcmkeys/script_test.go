package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/pcmkeys/pcmkeys/internal/testroot"
)

// TestMain makes the test binary pcmkeys itself when it runs under that
// name: testscript.Main puts a copy called pcmkeys on the scripts' PATH, so
// `exec pcmkeys …` in a script is this package's real main (argv, exit
// code, stdout and stderr as a shell sees them).
func TestMain(m *testing.M) {
	testscript.Main(removeBinary{m}, map[string]func(){"pcmkeys": main})
}

// removeBinary runs the tests, then removes the binary pcmkeysBinary built
// for the lab tests.
type removeBinary struct{ m *testing.M }

func (r removeBinary) Run() int {
	code := r.m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	return code
}

// TestScript runs the CLI contracts in testdata/script: argv in, exit code,
// stdout and stderr out (go test -run TestScript/NAME runs one).
//
// Besides testscript's own commands, a script has:
//
//	exits N prog [args...]  run prog like exec; its exit code must be N
//	hostroot DIR            make DIR a host root (internal/testroot)
//	snapshot FILE DIR...    list every file under the DIRs (mode, size,
//	                        modification time; the lock excepted) into FILE
//	auditctl-check FILE     every line of FILE reads as auditctl reads a
//	                        rules file, and one is a rule (auditd_test.go)
//
// and $NL, $CR and $TAB hold a newline, a carriage return and a tab, for
// arguments a script line cannot spell. A refusal is `exits 2 pcmkeys …`,
// never `! exec pcmkeys …`, which would take any failure.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("NL", "\n")
			e.Setenv("CR", "\r")
			e.Setenv("TAB", "\t")
			e.Values[scriptT{}] = e.T()
			return nil
		},
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"exits":          cmdExits,
			"hostroot":       cmdHostroot,
			"snapshot":       cmdSnapshot,
			"auditctl-check": cmdAuditctlCheck,
		},
	})
}

// scriptT is the key of the running script's testing.TB in Env.Values.
type scriptT struct{}

func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exits")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exits N prog [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %q is not an exit code", args[0])
	}
	got := 0
	var ee *exec.ExitError
	switch err := ts.Exec(args[1], args[2:]...); {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

func cmdHostroot(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: hostroot DIR")
	}
	tb, ok := ts.Value(scriptT{}).(testing.TB)
	if !ok {
		ts.Fatalf("hostroot: no testing.TB (scripts run under testscript.Run)")
	}
	r := testroot.New(tb)
	// The root is made in the test's temporary directory, on the same file
	// system as $WORK.
	ts.Check(os.Rename(r.Dir, ts.MkAbs(args[0])))
}

func cmdSnapshot(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: snapshot FILE DIR...")
	}
	work := ts.MkAbs(".")
	var b strings.Builder
	for _, dir := range args[1:] {
		err := filepath.WalkDir(ts.MkAbs(dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Name() == "lock" || d.Name() == "lock.json" { // the lock is not data
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(work, p)
			if d.IsDir() {
				fmt.Fprintf(&b, "%s %v\n", rel, fi.Mode())
			} else {
				fmt.Fprintf(&b, "%s %v %d %d\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
			}
			return nil
		})
		ts.Check(err)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o644))
}
