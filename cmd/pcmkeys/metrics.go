package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/rotate"
)

// metricsFileMode is the mode of the file metrics --out writes:
// node_exporter runs as its own user and must read it. The file holds no
// secret: credential IDs, versions, dates, host names, paths, owners and
// states, never a key or a fingerprint (see writeMetrics).
const metricsFileMode = 0o644

func newMetricsCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "metrics [--out FILE]",
		Short: "Status as Prometheus metrics, for node_exporter's textfile collector",
		Long: `Run the checks of status and write what they found in the Prometheus text
format: per credential its version, creation and due dates and whether it is
overdue; per host whether it could be checked; per file its state (ok, missing,
drift, wrong_owner, wrong_mode, unsafe, stale, error, restart_pending, daemon);
the number of findings; when the run was, how long it took and whether it
succeeded. No key, fingerprint or password is ever written.

With --out FILE the metrics replace FILE atomically (a temporary file in the
same directory, renamed over it: a reader never sees half a file), mode 0644.
Point it into node_exporter's --collector.textfile.directory, as the
pcmkeys-metrics timer does (every 5 minutes, into
/var/lib/prometheus/node-exporter/pcmkeys.prom).

Findings are data here: the exit code is 0 whatever status found. A run that
cannot read the store fails as status does, and writes only
pcmkeys_status_success 0 with the run's time, so an alert can say so.
See docs/metrics.md for every metric and ready alert rules.`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error { return runMetrics(g, out) },
	}
	cmd.Flags().StringVar(&out, "out", "", "replace FILE atomically (mode 0644) instead of writing to stdout")
	return cmd
}

func runMetrics(g *globals, out string) error {
	if g.output != "text" {
		return flagErrorf("metrics writes the Prometheus text format only (for JSON, use status -o json)")
	}
	// The cluster label, also for the metrics of a run that fails.
	cfg, err := config.Load(config.Find(g.configPath))
	if err != nil {
		return err
	}
	run := metricsRun{Cluster: cfg.Cluster, Start: time.Now()}
	var st *rotate.StatusReport
	err = withEnv(g, false, func(ctx context.Context, env *rotate.Env) error {
		env.Progress = nil
		var err error
		st, err = rotate.Status(ctx, env, rotate.StatusRequest{})
		if err != nil && !errors.Is(err, rotate.ErrFindings) {
			return err
		}
		// An interrupted run's hosts were not checked, not down: it
		// leaves the last run's metrics alone.
		return ctx.Err()
	})
	if errors.Is(err, context.Canceled) || g.interrupted.Load() {
		return err
	}
	run.Duration = time.Since(run.Start)
	if err != nil {
		st = nil
	}
	var b bytes.Buffer
	writeMetrics(&b, run, st)
	if out == "" {
		_, werr := g.stdout.Write(b.Bytes())
		return errors.Join(err, werr)
	}
	return errors.Join(err, writeMetricsFile(out, b.Bytes()))
}

// writeMetricsFile replaces path with data: a temporary file in the same
// directory (named .BASE…, which the textfile collector skips: it reads
// only *.prom), synced, given mode 0644 whatever the umask or the old
// file's mode, then renamed over path. A link at path is replaced, not
// followed.
func writeMetricsFile(path string, data []byte) error {
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(metricsFileMode))
	if err != nil {
		return fmt.Errorf("metrics %s: %w", path, err)
	}
	defer f.Cleanup()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("metrics %s: %w", path, err)
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("metrics %s: %w", path, err)
	}
	return nil
}

// metricsRun is one run of the checks.
type metricsRun struct {
	Cluster  string
	Start    time.Time
	Duration time.Duration
}

// fileStates are the states of pcmkeys_file_state, in the order written.
// Every file has a series for each, 1 for its state and 0 for the others
// (node_exporter's systemd unit states do the same), so a query can name
// a state whether or not any file is in it now.
var fileStates = []rotate.State{
	rotate.FileOK, rotate.FileMissing, rotate.FileDrift, rotate.FileWrongOwner, rotate.FileWrongMode,
	rotate.FileUnsafe, rotate.FileStale, rotate.FileError, rotate.FileRestartPending, rotate.FileDaemon,
}

// writeMetrics renders a run in the Prometheus text format, version 0.0.4.
// st is nil for a run that failed: then only the run's own metrics are
// written, with pcmkeys_status_success 0.
//
// Labels hold names, never secrets. The fingerprint is left out on
// purpose: it is a hash of the key, and hacluster's password may be one a
// person chose, which a published hash lets anyone guess offline.
func writeMetrics(w io.Writer, run metricsRun, st *rotate.StatusReport) {
	m := &metricsWriter{w: w}
	cl := []string{"cluster", run.Cluster}
	m.family("pcmkeys_status_success", "Whether the last run of the checks completed, whatever it found (1), or failed: the store could not be read (0).")
	m.sample(boolValue(st != nil), cl...)
	m.family("pcmkeys_status_last_run_timestamp_seconds", "When the last run of the checks started, in seconds since the epoch.")
	m.sample(seconds(run.Start), cl...)
	m.family("pcmkeys_status_duration_seconds", "How long the last run of the checks took.")
	m.sample(run.Duration.Seconds(), cl...)
	if st == nil {
		return
	}
	m.family("pcmkeys_findings", "How many problems the checks found (what pcmkeys status counts: overdue keys, files not as they should be, hosts not checked).")
	m.sample(float64(st.Findings), cl...)

	creds := func(name, help string, value func(rotate.CredentialStatus) float64) {
		m.family(name, help)
		for _, c := range st.Credentials {
			m.sample(value(c), "cluster", run.Cluster, "credential", string(c.ID))
		}
	}
	creds("pcmkeys_key_version", "The current version of a credential in the store.",
		func(c rotate.CredentialStatus) float64 { return float64(c.Version) })
	creds("pcmkeys_key_created_timestamp_seconds", "When a credential's current version was made, in seconds since the epoch.",
		func(c rotate.CredentialStatus) float64 { return seconds(c.Created) })
	creds("pcmkeys_key_due_timestamp_seconds", "When a credential's current version is due for rotation (policy.rotate_after), in seconds since the epoch.",
		func(c rotate.CredentialStatus) float64 { return seconds(c.Due) })
	creds("pcmkeys_key_overdue", "Whether a credential's current version is past its due date (1) or not (0).",
		func(c rotate.CredentialStatus) float64 { return boolValue(c.Overdue) })

	m.family("pcmkeys_host_up", "Whether the checks could reach and check a host (1), or not: unreachable, timed out, failed (0; pcmkeys status says why).")
	for _, h := range st.Hosts {
		up := h.State == rotate.FileOK || h.State == rotate.HostFindings
		m.sample(boolValue(up), "cluster", run.Cluster, "host", h.Host)
	}
	m.family("pcmkeys_file_state", "The state of a file pcmkeys manages on a host (kind daemon: what a running daemon uses): 1 for the state it is in, 0 for the others.")
	for _, f := range mergeFiles(st.Hosts) {
		for _, s := range f.states {
			m.sample(boolValue(f.in[s]), "cluster", run.Cluster, "host", f.host, "path", f.path, "owner", f.owner, "kind", f.kind, "state", string(s))
		}
	}
}

// fileSeries is one file of one host: the labels of its series and the
// states it is in.
type fileSeries struct {
	host, path, owner, kind string
	states                  []rotate.State
	in                      map[rotate.State]bool
}

// mergeFiles makes one fileSeries per host, path, owner and kind, in the
// report's order. Two entries with the same labels (two daemon checks of
// one name) would be the same series twice, which fails the whole scrape:
// they are merged, in every state either is in, ok only if both are.
func mergeFiles(hosts []rotate.HostStatus) []*fileSeries {
	var out []*fileSeries
	seen := map[[4]string]*fileSeries{}
	for _, h := range hosts {
		for _, f := range h.Files {
			key := [4]string{h.Host, f.Path, f.Owner, string(f.Kind)}
			fs := seen[key]
			if fs == nil {
				fs = &fileSeries{host: h.Host, path: f.Path, owner: f.Owner, kind: string(f.Kind), states: fileStates, in: map[rotate.State]bool{}}
				seen[key] = fs
				out = append(out, fs)
			}
			fs.in[f.State] = true
			if len(fs.in) > 1 {
				delete(fs.in, rotate.FileOK)
			}
			if !containsState(fs.states, f.State) {
				// A state this version does not know yet still shows.
				fs.states = append(append([]rotate.State(nil), fs.states...), f.State)
			}
		}
	}
	return out
}

func containsState(states []rotate.State, s rotate.State) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

// metricsWriter writes gauges in the text format: each family's HELP and
// TYPE once, then its samples.
type metricsWriter struct {
	w    io.Writer
	name string
}

func (m *metricsWriter) family(name, help string) {
	fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s gauge\n", name, escapeHelp(help), name)
	m.name = name
}

// sample writes one sample of the current family; labels are name, value
// pairs.
func (m *metricsWriter) sample(v float64, labels ...string) {
	var b strings.Builder
	b.WriteString(m.name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(m.w, "%s %s\n", b.String(), strconv.FormatFloat(v, 'f', -1, 64))
}

// escapeLabel escapes a label value as the text format wants (backslash,
// double quote, newline); bytes that are not UTF-8 become U+FFFD, which a
// parser would refuse.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(strings.ToValidUTF8(s, "\uFFFD"))
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// seconds is t in seconds since the epoch, to the millisecond.
func seconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
