package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
	"github.com/pcmkeys/pcmkeys/rotate"
)

// parseMetrics parses text as node_exporter's textfile collector does
// (the text format, legacy names) and fails on what it would refuse or
// what would fail its scrape: a parse error, a family that is not a gauge
// with help, the same series twice.
func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the Prometheus parser refuses the metrics: %v\n%s", err, text)
	}
	for name, f := range fams {
		if f.GetType() != dto.MetricType_GAUGE || f.GetHelp() == "" || !strings.HasPrefix(name, "pcmkeys_") {
			t.Errorf("%s: type %v, help %q", name, f.GetType(), f.GetHelp())
		}
		seen := map[string]bool{}
		for _, m := range f.Metric {
			k := seriesKey(m.Label)
			if seen[k] {
				t.Errorf("%s{%s} twice: node_exporter would fail the scrape", name, k)
			}
			seen[k] = true
		}
	}
	return fams
}

func seriesKey(labels []*dto.LabelPair) string {
	var parts []string
	for _, l := range labels {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// sample is the value of the series of name with exactly labels, and
// whether there is one.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range fams[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// series names one series for expect: the metric's name, then label
// names and values.
func series(name string, labels ...string) string {
	return strings.Join(append([]string{name}, labels...), "\x00")
}

// expect checks that each series has its value.
func expect(t *testing.T, fams map[string]*dto.MetricFamily, want map[string]float64) {
	t.Helper()
	for s, v := range want {
		parts := strings.Split(s, "\x00")
		got, ok := sample(fams, parts[0], parts[1:]...)
		if !ok || got != v {
			t.Errorf("%q = %v (present %v), want %v", parts, got, ok, v)
		}
	}
}

// render is writeMetrics into a string.
func render(run metricsRun, st *rotate.StatusReport) string {
	var b bytes.Buffer
	writeMetrics(&b, run, st)
	return b.String()
}

// TestMetricsText: the text format as the real parser reads it, for a
// report with every kind of host and file, hostile names, and a failed run.
func TestMetricsText(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 500e6, time.UTC)
	run := metricsRun{Cluster: `pr"od`, Start: start, Duration: 1500 * time.Millisecond}
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &rotate.StatusReport{
		Findings: 5,
		Credentials: []rotate.CredentialStatus{
			{ID: keystore.AuthkeyID, Version: 3, Fingerprint: "SHA256:secretish", Created: created, Due: created.Add(365 * policies.Day), Overdue: true},
			{ID: keystore.CIB("alice"), Version: 7, Fingerprint: "SHA256:secretish2", Created: created, Due: created.Add(90 * policies.Day)},
		},
		Hosts: []rotate.HostStatus{
			{Host: "node1", State: rotate.HostFindings, Files: []rotate.FileStatus{
				{Path: "/etc/pacemaker/authkey", Kind: policies.Authkey, Owner: "hacluster", State: rotate.FileDrift},
				{Path: "~/.pcmkeys/prod.key", Kind: policies.ClientKey, Owner: "alice", State: rotate.FileOK},
				{Path: "~/.pcmkeys/prod.key", Kind: policies.ClientKey, Owner: "bob", State: rotate.FileStale},
				{Path: "pacemaker-based", Kind: "daemon", State: rotate.FileRestartPending},
				{Path: "pacemaker-based", Kind: "daemon", State: rotate.FileDaemon},
				{Path: "/odd \"q\" \\ b\nn\xff", Kind: policies.ClientEnv, Owner: "alice", State: "future_state"},
			}},
			{Host: "node2", State: rotate.State("timed_out"), Error: "timed out"},
			{Host: "node3", State: rotate.FileOK},
		},
	}
	text := render(run, st)
	fams := parseMetrics(t, text)
	cl := `pr"od`
	expect(t, fams, map[string]float64{
		series("pcmkeys_status_success", "cluster", cl):                                           1,
		series("pcmkeys_status_last_run_timestamp_seconds", "cluster", cl):                        float64(start.UnixMilli()) / 1000,
		series("pcmkeys_status_duration_seconds", "cluster", cl):                                  1.5,
		series("pcmkeys_findings", "cluster", cl):                                                 5,
		series("pcmkeys_key_version", "cluster", cl, "credential", "authkey"):                     3,
		series("pcmkeys_key_version", "cluster", cl, "credential", "cib/alice"):                   7,
		series("pcmkeys_key_created_timestamp_seconds", "cluster", cl, "credential", "authkey"):   float64(created.Unix()),
		series("pcmkeys_key_due_timestamp_seconds", "cluster", cl, "credential", "cib/alice"):     float64(created.Add(90 * policies.Day).Unix()),
		series("pcmkeys_key_overdue", "cluster", cl, "credential", "authkey"):                     1,
		series("pcmkeys_key_overdue", "cluster", cl, "credential", "cib/alice"):                   0,
		series("pcmkeys_host_up", "cluster", cl, "host", "node1"):                                 1,
		series("pcmkeys_host_up", "cluster", cl, "host", "node2"):                                 0,
		series("pcmkeys_host_up", "cluster", cl, "host", "node3"):                                 1,
		fileState(cl, "node1", "/etc/pacemaker/authkey", "hacluster", "authkey", "drift"):         1,
		fileState(cl, "node1", "/etc/pacemaker/authkey", "hacluster", "authkey", "ok"):            0,
		fileState(cl, "node1", "~/.pcmkeys/prod.key", "alice", "client_key", "ok"):                1,
		fileState(cl, "node1", "~/.pcmkeys/prod.key", "bob", "client_key", "stale"):               1,
		fileState(cl, "node1", "~/.pcmkeys/prod.key", "bob", "client_key", "ok"):                  0,
		fileState(cl, "node1", "pacemaker-based", "", "daemon", "restart_pending"):                1,
		fileState(cl, "node1", "pacemaker-based", "", "daemon", "daemon"):                         1,
		fileState(cl, "node1", "pacemaker-based", "", "daemon", "ok"):                             0,
		fileState(cl, "node1", "/odd \"q\" \\ b\nn\uFFFD", "alice", "client_env", "future_state"): 1,
	})
	// Ten states for each of the five files (a state this version does
	// not know is added to its file's), none for the host not checked.
	if n := len(fams["pcmkeys_file_state"].GetMetric()); n != 5*len(fileStates)+1 {
		t.Errorf("%d file state series, want %d", n, 5*len(fileStates)+1)
	}
	if strings.Contains(text, "SHA256") || strings.Contains(text, "secretish") {
		t.Error("the metrics hold a fingerprint")
	}

	// A failed run says so, and nothing else.
	fams = parseMetrics(t, render(run, nil))
	expect(t, fams, map[string]float64{series("pcmkeys_status_success", "cluster", cl): 0, series("pcmkeys_status_duration_seconds", "cluster", cl): 1.5})
	if len(fams) != 3 {
		t.Errorf("a failed run wrote %d families, want the run's 3", len(fams))
	}
}

// fileState names one pcmkeys_file_state series for expect.
func fileState(cluster, host, path, owner, kind, state string) string {
	return series("pcmkeys_file_state", "cluster", cluster, "host", host, "path", path, "owner", owner, "kind", kind, "state", state)
}

// TestMetricsQuickstart is the command on the quickstart: all in sync,
// then a node file edited by hand: status exits 4, metrics exits 0 and
// says drift; the file it writes is replaced whole, mode 0644, and holds
// no key and no fingerprint.
func TestMetricsQuickstart(t *testing.T) {
	cfg, root := quickstart(t, "shared")
	for _, args := range [][]string{{"init"}, {"onboard", "alice", "--client", "localhost"}} {
		if code, _, stderr := cli(t, false, append([]string{"--config", cfg}, args...)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", args[0], code, stderr)
		}
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "pcmkeys.prom")
	before := time.Now()
	metrics := func() map[string]*dto.MetricFamily {
		t.Helper()
		code, stdout, stderr := cli(t, false, "--config", cfg, "metrics", "--out", out)
		if code != 0 || stdout != "" {
			t.Fatalf("metrics --out: exit %d, stdout %q: %s", code, stdout, stderr)
		}
		fi, err := os.Lstat(out)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
			t.Fatalf("%s: %v %v, want a regular file 0644", out, fi.Mode(), err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 2 { // the file and the link's target
			t.Errorf("%d files in the directory: a temporary file was left", len(ents))
		}
		return parseMetrics(t, string(mustRead(t, out)))
	}
	// What was there is replaced: a 0600 file's mode, a link (not followed).
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, out); err != nil {
		t.Fatal(err)
	}
	fams := metrics()
	if b := mustRead(t, target); string(b) != "keep\n" {
		t.Error("metrics --out wrote through a link")
	}
	cl := "quickstart"
	cibFile := func(state string) string {
		return fileState(cl, "localhost", "/etc/pacemaker/cib-credentials", "hacluster", "cib_credentials", state)
	}
	want := map[string]float64{
		series("pcmkeys_status_success", "cluster", cl): 1, series("pcmkeys_findings", "cluster", cl): 0, series("pcmkeys_host_up", "cluster", cl, "host", "localhost"): 1,
		series("pcmkeys_key_version", "cluster", cl, "credential", "authkey"): 1, series("pcmkeys_key_version", "cluster", cl, "credential", "cib/hacluster"): 1,
		series("pcmkeys_key_version", "cluster", cl, "credential", "password/hacluster"): 1,
		series("pcmkeys_key_overdue", "cluster", cl, "credential", "cib/hacluster"):      0,
		cibFile("ok"): 1, cibFile("drift"): 0,
		fileState(cl, "localhost", "/etc/pacemaker/authkey", "hacluster", "authkey", "ok"):           1,
		fileState(cl, "localhost", "~/.pcmkeys/quickstart.key", "alice", "client_key", "ok"):         1,
		fileState(cl, "localhost", "~/.pcmkeys/quickstart.env", "alice", "client_env", "ok"):         1,
		fileState(cl, "localhost", "~/.pcmkeys/quickstart.passwd", "alice", "client_password", "ok"): 1,
	}
	expect(t, fams, want)
	for id, age := range map[string]time.Duration{"authkey": policies.DefaultAuthkeyRotateAfter, "cib/hacluster": policies.DefaultCIBRotateAfter} {
		created, _ := sample(fams, "pcmkeys_key_created_timestamp_seconds", "cluster", "quickstart", "credential", id)
		due, _ := sample(fams, "pcmkeys_key_due_timestamp_seconds", "cluster", "quickstart", "credential", id)
		if d := time.Duration((due - created) * 1e9); d.Round(time.Second) != age || created < float64(before.Unix()-60) {
			t.Errorf("%s: created %v, due %v later, want %v", id, created, d, age)
		}
	}
	if ran, _ := sample(fams, "pcmkeys_status_last_run_timestamp_seconds", "cluster", "quickstart"); ran < float64(before.UnixMilli())/1000-1 {
		t.Errorf("last run at %v, before the test began (%v)", ran, before)
	}
	noSecrets(t, cfg, string(mustRead(t, out)), root.Path("home/alice/.pcmkeys/quickstart.key"), root.Path("etc/pacemaker/authkey"), root.Path("home/alice/.pcmkeys/quickstart.passwd"))

	// Someone edits the node's file; owner and mode stay as they were.
	if err := os.WriteFile(root.Path("etc/pacemaker/cib-credentials"), []byte("hacluster:"+strings.Repeat("0f", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o600); err != nil { // metrics makes it 0644 again
		t.Fatal(err)
	}
	if code, _, _ := cli(t, false, "--config", cfg, "status"); code != exitFindings {
		t.Fatalf("status after the edit: exit %d, want %d", code, exitFindings)
	}
	fams = metrics()
	want[cibFile("ok")], want[cibFile("drift")], want[series("pcmkeys_findings", "cluster", cl)] = 0, 1, 1
	expect(t, fams, want)
}

// noSecrets fails if text holds any of the keys in files (as bytes, hex,
// base64) or a fingerprint that status shows.
func noSecrets(t *testing.T, cfg, text string, files ...string) {
	t.Helper()
	for _, f := range files {
		secret := bytes.TrimSpace(mustRead(t, f))
		for _, form := range []string{string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret)} {
			if len(form) >= 16 && strings.Contains(text, form[:16]) {
				t.Fatalf("the metrics hold the key of %s", f)
			}
		}
	}
	_, js, _ := cli(t, false, "--config", cfg, "-o", "json", "status")
	var st rotate.StatusReport
	if err := json.Unmarshal([]byte(js), &st); err != nil || len(st.Credentials) == 0 {
		t.Fatalf("status -o json: %v", err)
	}
	for _, c := range st.Credentials {
		if fp := strings.TrimPrefix(c.Fingerprint, "SHA256:"); strings.Contains(text, fp[:12]) {
			t.Errorf("the metrics hold %s's fingerprint", c.ID)
		}
	}
}

// TestMetricsOverdue: the store's own dates, read 100 days on: the CIB key
// and the password (90 days) are overdue, the authkey (365) is not.
func TestMetricsOverdue(t *testing.T) {
	cfgPath, _ := quickstart(t, "shared")
	if code, _, stderr := cli(t, false, "--config", cfgPath, "init"); code != 0 {
		t.Fatal(stderr)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := rotate.OpenStore(ctx, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	later := time.Now().Add(100 * policies.Day)
	env := &rotate.Env{Config: cfg, Store: store, Parallel: 1, Now: func() time.Time { return later }}
	defer env.Close()
	st, err := rotate.Status(ctx, env, rotate.StatusRequest{})
	if err == nil {
		t.Fatal("status 100 days on found nothing overdue")
	}
	fams := parseMetrics(t, render(metricsRun{Cluster: cfg.Cluster, Start: later}, st))
	cl := "quickstart"
	expect(t, fams, map[string]float64{
		series("pcmkeys_key_overdue", "cluster", cl, "credential", "cib/hacluster"):      1,
		series("pcmkeys_key_overdue", "cluster", cl, "credential", "password/hacluster"): 1,
		series("pcmkeys_key_overdue", "cluster", cl, "credential", "authkey"):            0,
		series("pcmkeys_findings", "cluster", cl):                                        2,
		series("pcmkeys_status_success", "cluster", cl):                                  1,
	})
}

// TestMetricsStoreError: a store that cannot be read fails metrics as it
// fails status (exit 1), and the file then says only that the run failed.
func TestMetricsStoreError(t *testing.T) {
	cfg, _ := quickstart(t, "shared") // no init: there is no store
	out := filepath.Join(t.TempDir(), "pcmkeys.prom")
	scode, _, _ := cli(t, false, "--config", cfg, "status")
	code, _, stderr := cli(t, false, "--config", cfg, "metrics", "--out", out)
	if code != scode || code != exitError || !strings.Contains(stderr, "store") {
		t.Fatalf("metrics without a store: exit %d (status %d), want %d: %s", code, scode, exitError, stderr)
	}
	fams := parseMetrics(t, string(mustRead(t, out)))
	expect(t, fams, map[string]float64{series("pcmkeys_status_success", "cluster", "quickstart"): 0})
	if fams["pcmkeys_findings"] != nil || fams["pcmkeys_key_version"] != nil {
		t.Error("a failed run wrote findings or keys")
	}
}
