package main

// What an operator installs around pcmkeys metrics: the alert rules of
// docs/metrics.md (against promtool), the contrib units (against
// systemd-analyze) and the file as the real node_exporter serves it.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
	"github.com/pcmkeys/pcmkeys/rotate"
)

// ruleFile is a Prometheus rules file, every field it may have.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert         string            `yaml:"alert"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for,omitempty"`
	KeepFiringFor string            `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
}

// docRules is the one YAML block of docs/metrics.md, as written there.
func docRules(t *testing.T) string {
	t.Helper()
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(mustRead(t, "../../docs/metrics.md")), -1)
	if len(blocks) != 1 {
		t.Fatalf("docs/metrics.md has %d yaml blocks, want the rules alone", len(blocks))
	}
	return blocks[0][1]
}

// problemReport has one of each problem an alert is for: an overdue key,
// a drifted file, a host not checked.
func problemReport() *rotate.StatusReport {
	made := time.Unix(0, 0).UTC()
	return &rotate.StatusReport{
		Findings: 3,
		Credentials: []rotate.CredentialStatus{
			{ID: keystore.AuthkeyID, Version: 2, Created: made, Due: made, Overdue: true},
			{ID: keystore.CIB("hacluster"), Version: 5, Created: made, Due: made.Add(90 * policies.Day)},
		},
		Hosts: []rotate.HostStatus{
			{Host: "node1", State: rotate.HostFindings, Files: []rotate.FileStatus{
				{Path: "/etc/pacemaker/cib-credentials", Kind: policies.CIBCredentials, Owner: "hacluster", State: rotate.FileDrift},
				{Path: "/etc/pacemaker/authkey", Kind: policies.Authkey, Owner: "hacluster", State: rotate.FileOK},
			}},
			{Host: "node2", State: "unreachable", Error: "connection refused"},
		},
	}
}

// TestMetricsAlertRules: the documented rules parse as YAML with the
// alerts the docs promise, name only metrics and labels pcmkeys writes, and
// (with promtool) load in Prometheus and fire on what pcmkeys writes for
// each problem, and only then.
func TestMetricsAlertRules(t *testing.T) {
	text := docRules(t)
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("the rules in docs/metrics.md: %v", err)
	}
	written := parseMetrics(t, render(metricsRun{Cluster: "c"}, problemReport()))
	labels := map[string]bool{"instance": true, "job": true}
	for _, f := range written {
		for _, l := range f.Metric[0].Label {
			labels[l.GetName()] = true
		}
	}
	var names []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			for _, m := range regexp.MustCompile(`pcmkeys_[a-z_]+`).FindAllString(r.Expr, -1) {
				if written[m] == nil {
					t.Errorf("%s: %s is no metric pcmkeys writes", r.Alert, m)
				}
			}
			for _, m := range regexp.MustCompile(`\$labels\.([a-z_]+)`).FindAllStringSubmatch(r.Annotations["summary"]+r.Annotations["description"], -1) {
				if !labels[m[1]] {
					t.Errorf("%s: label %s is no label of pcmkeys's metrics", r.Alert, m[1])
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a severity, a summary and a description", r.Alert)
			}
		}
	}
	for _, want := range []string{"PcmkeysKeyOverdue", "PcmkeysHostDrifted", "PcmkeysHostUnreachable", "PcmkeysMetricsStale", "PcmkeysStatusFailed"} {
		if !slices.Contains(names, want) {
			t.Errorf("the rules lack %s (have %v)", want, names)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus): the rules were not loaded in Prometheus")
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pcmkeys.yml"), []byte(text))
	if out, err := exec.Command(promtool, "check", "rules", filepath.Join(dir, "pcmkeys.yml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	// promtool's unit tests compare annotations too: the copy it runs has
	// none (check rules above checked their templates).
	for i := range rf.Groups {
		for j := range rf.Groups[i].Rules {
			rf.Groups[i].Rules[j].Annotations = nil
		}
	}
	rules, _ := yaml.Marshal(rf)
	writeFile(t, filepath.Join(dir, "bare.yml"), rules)
	tests, _ := yaml.Marshal(map[string]any{
		"rule_files":          []string{"bare.yml"},
		"evaluation_interval": "1m",
		"tests":               []any{problemsTest(t), failedTest(t), absentTest()},
	})
	writeFile(t, filepath.Join(dir, "tests.yml"), tests)
	cmd := exec.Command(promtool, "test", "rules", "tests.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s\n%s", err, out, tests)
	}
}

// promTest is one test of promtool test rules: the series of what pcmkeys
// wrote for 90 minutes (the last run's time as it goes by, with fresh),
// and the alerts expected at 70 minutes.
func promTest(t *testing.T, text string, fresh bool, want map[string][]map[string]string) map[string]any {
	var series []map[string]string
	for name, f := range parseMetrics(t, text) {
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, fmt.Sprintf("%s=\"%s\"", l.GetName(), escapeLabel(l.GetValue())))
			}
			values := strconv.FormatFloat(m.GetGauge().GetValue(), 'f', -1, 64) + "+0x90"
			if name == "pcmkeys_status_last_run_timestamp_seconds" && fresh {
				values = "0+60x90" // promtool's clock starts at 0
			}
			series = append(series, map[string]string{"series": name + "{" + strings.Join(ls, ",") + "}", "values": values})
		}
	}
	sort.Slice(series, func(i, j int) bool { return series[i]["series"] < series[j]["series"] })
	return map[string]any{"interval": "1m", "input_series": series, "alert_rule_test": alertTests(want)}
}

func alertTests(want map[string][]map[string]string) []any {
	var out []any
	for _, name := range []string{"PcmkeysKeyOverdue", "PcmkeysHostDrifted", "PcmkeysHostUnreachable", "PcmkeysMetricsStale", "PcmkeysStatusFailed"} {
		exp := []any{}
		for _, ls := range want[name] {
			exp = append(exp, map[string]any{"exp_labels": ls})
		}
		out = append(out, map[string]any{"eval_time": "70m", "alertname": name, "exp_alerts": exp})
	}
	return out
}

// problemsTest: each problem fires its alert; the run is fresh and
// succeeded, so those two stay quiet.
func problemsTest(t *testing.T) map[string]any {
	return promTest(t, render(metricsRun{Cluster: "c"}, problemReport()), true, map[string][]map[string]string{
		"PcmkeysKeyOverdue": {{"cluster": "c", "credential": "authkey", "severity": "warning"}},
		"PcmkeysHostDrifted": {{"cluster": "c", "host": "node1", "path": "/etc/pacemaker/cib-credentials", "owner": "hacluster",
			"kind": "cib_credentials", "state": "drift", "severity": "critical"}},
		"PcmkeysHostUnreachable": {{"cluster": "c", "host": "node2", "severity": "warning"}},
	})
}

// failedTest: a run that failed, and no run since.
func failedTest(t *testing.T) map[string]any {
	return promTest(t, render(metricsRun{Cluster: "c", Start: time.Unix(0, 0)}, nil), false, map[string][]map[string]string{
		"PcmkeysStatusFailed": {{"cluster": "c", "severity": "critical"}},
		"PcmkeysMetricsStale": {{"cluster": "c", "severity": "warning"}},
	})
}

// absentTest: no pcmkeys metrics at all.
func absentTest() map[string]any {
	return map[string]any{
		"interval":        "1m",
		"input_series":    []map[string]string{{"series": `up{job="node"}`, "values": "1+0x90"}},
		"alert_rule_test": alertTests(map[string][]map[string]string{"PcmkeysMetricsStale": {{"severity": "warning"}}}),
	}
}

// unit reads a systemd unit's settings (a key set twice keeps both).
func unit(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, line := range strings.Split(string(mustRead(t, path)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// TestMetricsUnits: the contrib timer runs metrics every 5 minutes into
// node_exporter's directory, the packages install both units, and
// systemd-analyze verifies them as installed.
func TestMetricsUnits(t *testing.T) {
	svc := unit(t, "../../contrib/systemd/pcmkeys-metrics.service")
	tmr := unit(t, "../../contrib/systemd/pcmkeys-metrics.timer")
	for _, c := range []struct {
		got  []string
		want string
	}{
		{svc["ExecStart"], "pcmkeys metrics --out /var/lib/prometheus/node-exporter/pcmkeys.prom"},
		{svc["Type"], "oneshot"},
		{svc["ProtectSystem"], "strict"},
		{svc["ReadWritePaths"], "-/var/lib/prometheus/node-exporter -/var/lib/pcmkeys"},
		{svc["TimeoutStartSec"], "4min"},
		{tmr["OnUnitActiveSec"], "5min"},
		{tmr["WantedBy"], "timers.target"},
	} {
		if len(c.got) != 1 || c.got[0] != c.want {
			t.Errorf("units: %q, want %q", c.got, c.want)
		}
	}
	var pkg struct {
		Contents []struct{ Src, Dst string }
	}
	if err := yaml.Unmarshal(mustRead(t, "../../packaging/nfpm.yaml"), &pkg); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"pcmkeys-metrics.service", "pcmkeys-metrics.timer"} {
		if !slices.ContainsFunc(pkg.Contents, func(c struct{ Src, Dst string }) bool {
			return c.Src == "contrib/systemd/"+u && c.Dst == "/usr/lib/systemd/system/"+u
		}) {
			t.Errorf("packaging/nfpm.yaml does not install %s", u)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the units were not verified")
	}
	// As installed, with this build's man pages; the binary systemd would
	// start is this test's (verify checks it is there and executable).
	dir := t.TempDir()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, false, "man", filepath.Join(dir, "man", "man1")); code != 0 {
		t.Fatalf("man: %s", stderr)
	}
	svcText := strings.Replace(string(mustRead(t, "../../contrib/systemd/pcmkeys-metrics.service")), "\nExecStart=pcmkeys ", "\nExecStart="+bin+" ", 1)
	writeFile(t, filepath.Join(dir, "pcmkeys-metrics.service"), []byte(svcText))
	writeFile(t, filepath.Join(dir, "pcmkeys-metrics.timer"), mustRead(t, "../../contrib/systemd/pcmkeys-metrics.timer"))
	man := "yes"
	if _, err := exec.LookPath("man"); err != nil {
		man = "no" // Documentation= not checked
	}
	cmd := exec.Command(analyze, "verify", "--man="+man, filepath.Join(dir, "pcmkeys-metrics.service"), filepath.Join(dir, "pcmkeys-metrics.timer"))
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(dir, "man"))
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestMetricsNodeExporter: the real node_exporter reads the file metrics
// --out wrote (after a file drifted) without a scrape error and serves
// pcmkeys's series as written.
func TestMetricsNodeExporter(t *testing.T) {
	var exporter string
	for _, name := range []string{"prometheus-node-exporter", "node_exporter"} {
		if p, err := exec.LookPath(name); err == nil {
			exporter = p
		}
	}
	if exporter == "" {
		t.Skip("node_exporter is not installed (apt-get install prometheus-node-exporter)")
	}
	cfg, root := quickstart(t, "shared")
	if code, _, stderr := cli(t, false, "--config", cfg, "init"); code != 0 {
		t.Fatal(stderr)
	}
	writeFile(t, root.Path("etc/pacemaker/authkey"), bytes.Repeat([]byte{1}, 4096))
	dir := t.TempDir()
	if code, _, stderr := cli(t, false, "--config", cfg, "metrics", "--out", filepath.Join(dir, "pcmkeys.prom")); code != 0 {
		t.Fatalf("metrics: exit %d: %s", code, stderr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, exporter, "--web.listen-address="+addr, "--collector.disable-defaults",
		"--collector.textfile", "--collector.textfile.directory="+dir)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	var body []byte
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("node_exporter at %s: %v\n%s", addr, err, logs.String())
		}
	}
	text := string(body)
	if !strings.Contains(text, "node_textfile_scrape_error 0") {
		t.Errorf("node_exporter could not read the file:\n%s", text)
	}
	authkey := fileState("quickstart", "localhost", "/etc/pacemaker/authkey", "hacluster", "authkey", "drift")
	want := fmt.Sprintf("pcmkeys_file_state{%s} 1", strings.Join(labelPairs(strings.Split(authkey, "\x00")[1:]), ","))
	if !strings.Contains(text, want) {
		t.Errorf("node_exporter does not serve %s:\n%s", want, text)
	}
}

// labelPairs renders names and values as the text format does, sorted by
// name as node_exporter serves them.
func labelPairs(nv []string) []string {
	var out []string
	for i := 0; i+1 < len(nv); i += 2 {
		out = append(out, fmt.Sprintf("%s=%q", nv[i], nv[i+1]))
	}
	sort.Strings(out)
	return out
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
