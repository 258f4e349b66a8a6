package rotate

import (
	"errors"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/rotate/internal/crmmon"
)

// crmMonXML is a crm_mon --output-as=xml document of the shape Pacemaker
// 2.1 and 3.0 print (the pacemaker-result API), written for these tests:
// three full nodes, one remote node and its connection resource, two
// Dummy resources.
const crmMonXML = `<pacemaker-result api-version="2.42" request="crm_mon --output-as=xml">
  <summary>
    <stack type="corosync"/>
    <current_dc present="true" version="3.0.2" name="node1" id="1" with_quorum="%QUORUM%" mixed_version="false"/>
    <cluster_options stonith-enabled="true" maintenance-mode="%MAINT%"/>
  </summary>
  <nodes>
    <node name="node1" id="1" online="true" pending="false" unclean="false" type="member"/>
    <node name="node2" id="2" online="%N2%" pending="false" unclean="false" type="member"/>
    <node name="node3" id="3" online="true" pending="false" unclean="false" type="member"/>
    <node name="remote1" id="remote1" online="true" pending="false" unclean="false" type="remote"/>
  </nodes>
  <resources>
    <resource id="fence" resource_agent="stonith:fence_lab" role="Started" active="true" failed="false" managed="true"><node name="node1" id="1"/></resource>
    <resource id="remote1" resource_agent="ocf:pacemaker:remote" role="Started" active="true" failed="false" managed="true"><node name="node2" id="2"/></resource>
    %EXTRA%
    <resource id="dummy-remote" resource_agent="ocf:pacemaker:Dummy" role="Started" active="true" failed="false" managed="true"><node name="remote1" id="remote1"/></resource>
  </resources>
  <failures>%FAILURES%</failures>
  <fence_history>%FENCING%</fence_history>
  <status code="0" message="OK"/>
</pacemaker-result>`

func crmMon(t *testing.T, repl ...string) *crmmon.State {
	t.Helper()
	doc := crmMonXML
	defaults := map[string]string{"%QUORUM%": "true", "%MAINT%": "false", "%N2%": "true", "%EXTRA%": "", "%FAILURES%": "", "%FENCING%": ""}
	for i := 0; i+1 < len(repl); i += 2 {
		defaults[repl[i]] = repl[i+1]
	}
	for k, v := range defaults {
		doc = strings.ReplaceAll(doc, k, v)
	}
	st, err := crmmon.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func liveEnv(t *testing.T, nodes, remotes string) *Env {
	t.Helper()
	doc := "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes:\n" + nodes + "remote_nodes:\n" + remotes
	cfg, err := config.Parse([]byte(doc), "/x/pcmkeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Config: cfg}
}

// TestPrechecks: the live cluster is judged against the config before an
// authkey rotation: a healthy one passes; each problem fails its own check,
// as health (exit 1) or as a config mismatch (exit 2); --override goes past
// a health check.
func TestPrechecks(t *testing.T) {
	e := liveEnv(t, "  - {name: node1}\n  - {name: node2}\n  - {name: node3}\n", "  - {name: remote1}\n")
	for _, tc := range []struct {
		name     string
		repl     []string
		override string
		fails    string // the check that fails, "" for none
		config   bool
	}{
		{"healthy", nil, "", "", false},
		{"no quorum", []string{"%QUORUM%", "false"}, "", "quorum", false},
		{"a node offline", []string{"%N2%", "false"}, "", "nodes", false},
		{"a node offline, overridden", []string{"%N2%", "false"}, "nodes", "", false},
		{"a remote connection the config lacks", []string{"%EXTRA%", `<resource id="remote2" resource_agent="ocf:pacemaker:remote" role="Started" active="true" failed="false" managed="true"><node name="node3" id="3"/></resource>`}, "", "remote-nodes", true},
		{"fencing pending", []string{"%FENCING%", `<fence_event action="reboot" target="remote1" client="x" origin="node1" status="pending"/>`}, "", "fencing", false},
		{"a failed action", []string{"%FAILURES%", `<failure op_key="dummy-remote_monitor_10000" node="remote1" exitstatus="not running" exitcode="7" call="3" status="complete" task="monitor"/>`}, "", "failed-actions", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := crmMon(t, tc.repl...)
			override := map[string]bool{}
			if tc.override != "" {
				override[tc.override] = true
			}
			checks := e.prechecks(st, override)
			err := precheckError(checks)
			switch {
			case tc.fails == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.fails != "" && (err == nil || !strings.Contains(err.Error(), tc.fails+":")):
				t.Errorf("err = %v, want the %s check to fail", err, tc.fails)
			case tc.fails != "" && tc.config != (errorsIsBadInput(err)):
				t.Errorf("err = %v: bad input %v, want %v", err, errorsIsBadInput(err), tc.config)
			}
		})
	}
	// The config names a node the cluster does not know: a mismatch.
	other := liveEnv(t, "  - {name: node1}\n  - {name: node2}\n  - {name: node4}\n", "  - {name: remote1}\n")
	if err := precheckError(other.prechecks(crmMon(t), nil)); !errorsIsBadInput(err) || !strings.Contains(err.Error(), "node4") {
		t.Errorf("a node not in the cluster: %v", err)
	}
}

// TestClusterStateDiffs: what changed between two readings — fencing,
// failed actions, and where resources run.
func TestClusterStateDiffs(t *testing.T) {
	before := crmMon(t)
	after := crmMon(t, "%FENCING%", `<fence_event action="reboot" target="remote1" client="x" origin="node1" status="success" completed="2026-11-26 15:00:00Z"/>`,
		"%FAILURES%", `<failure op_key="remote1_start_0" node="node1" exitstatus="error" exitcode="1" call="9" status="complete" task="start"/>`)
	if f := after.NewFencing(before); len(f) != 1 || f[0].Target != "remote1" {
		t.Errorf("new fencing: %v", f)
	}
	if f := after.NewFailures(before); len(f) != 1 || f[0].Node != "node1" {
		t.Errorf("new failures: %v", f)
	}
	if a := before.ActiveResources(); !a["dummy-remote@remote1"] || !a["remote1@node2"] || len(a) != 3 {
		t.Errorf("active resources: %v", a)
	}
	if !before.Quorate || before.Maintenance || before.DC != "node1" {
		t.Errorf("summary: %+v", before)
	}
}

func errorsIsBadInput(err error) bool { return errors.Is(err, ErrBadInput) }
