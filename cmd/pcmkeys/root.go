package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// globals are the flags every command has.
type globals struct {
	configPath string
	output     string
	dryRun     bool
	parallel   int
	verbose    bool
	quiet      bool
	lockWait   time.Duration
	// interrupted is set by the first SIGINT or SIGTERM.
	interrupted atomic.Bool

	in             io.Reader
	stdout, stderr io.Writer
	// stdoutIsTerminal reports whether stdout is a terminal.
	stdoutIsTerminal func() bool
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

// run executes the command line args and returns the exit code.
func run(args []string, in io.Reader, stdout, stderr io.Writer) int {
	g := &globals{in: in, stdout: stdout, stderr: stderr, stdoutIsTerminal: func() bool { return isTerminal(stdout) }}
	err := execute(g, args)
	code := exitCode(err)
	if g.interrupted.Load() {
		code = exitInterrupted
	}
	if err != nil {
		hint := ""
		if errors.Is(err, keystore.ErrDestroyed) {
			hint = "the current version of a key was destroyed in the store: `pcmkeys rotate --cib` (or --authkey) writes a new version over it; then `pcmkeys push` delivers it"
		}
		printError(g, err, code, hint)
	}
	return code
}

// execute runs the command line and marks cobra's own usage errors (an
// unknown command) as flag errors.
func execute(g *globals, args []string) error {
	root := newRootCmd(g)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		return &flagError{err}
	}
	return err
}

// argsExactly is cobra.ExactArgs with the error marked as a usage mistake.
func argsExactly(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return &flagError{err}
		}
		return nil
	}
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "pcmkeys",
		Short: "Key lifecycle manager for Pacemaker clusters",
		Long: `pcmkeys generates the CIB TLS-PSK keys and the Pacemaker Remote authkey of a
cluster, keeps them in a store (Vault, or an age-encrypted local directory),
and delivers them as atomically written files with strict owners and modes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildVersion(),
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				return flagErrorf("--output must be text or json, not %q", g.output)
			}
			if g.parallel < 1 {
				return flagErrorf("--parallel must be at least 1")
			}
			return nil
		},
	}
	root.SetIn(g.in)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })
	f := root.PersistentFlags()
	f.StringVar(&g.configPath, "config", "", "config file (default $PCMKEYS_CONFIG, ./pcmkeys.yaml, /etc/pcmkeys/pcmkeys.yaml)")
	f.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	f.BoolVar(&g.dryRun, "dry-run", false, "print the plan and change nothing")
	f.IntVar(&g.parallel, "parallel", distribute.DefaultParallel, "how many hosts to work on at once")
	f.BoolVarP(&g.verbose, "verbose", "v", false, "log each step to stderr")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "print nothing but errors (and --output json); the exit code tells the result")
	f.DurationVar(&g.lockWait, "wait", 0, "wait up to this long for the cluster's lock another run holds (default: fail at once, exit 5)")

	root.AddCommand(newVersionCmd(g), newKeygenCmd(g), newInitCmd(g), newOnboardCmd(g),
		newRotateCmd(g), newRevokeCmd(g), newFetchCmd(g), newPushCmd(g), newStatusCmd(g), newImportCmd(g), newDoctorCmd(g), newAuditCmd(g), newPolicyCmd(g))
	root.AddCommand(newManCmd(g), newAdminsCmd(g), newRemoveClientCmd(g))
	root.AddCommand(newMetricsCmd(g))
	root.AddCommand(newBackupCmd(g), newRestoreCmd(g))
	registerCompletions(g, root)
	return root
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of pcmkeys",
		Args:  argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			v := buildVersion()
			return printResult(g, map[string]string{"version": v}, "pcmkeys "+v+"\n")
		},
	}
}

// buildVersion is the version set at build time, else the module's, with
// the commit it was built from when the build recorded one.
func buildVersion() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" && ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	if !ok {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " (commit " + rev + modified + ")"
	}
	return v
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && termIsTerminal(int(f.Fd()))
}

// flagError is a usage mistake: exit 2.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func flagErrorf(format string, args ...any) error {
	return &flagError{fmt.Errorf(format, args...)}
}
