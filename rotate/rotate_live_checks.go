package rotate

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/rotate/internal/crmmon"
)

// Precheck is one check of the live cluster before an authkey rotation.
type Precheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// Config marks a disagreement between the config and the cluster
	// (bad input, exit 2); the others are the cluster's health (exit 1).
	Config bool `json:"config,omitempty"`
	// Overridden is a failed check the operator said to go past.
	Overridden bool `json:"overridden,omitempty"`
}

// PrecheckNames are the checks --override can name.
var PrecheckNames = []string{"quorum", "nodes", "remote-nodes", "fencing", "failed-actions"}

// ErrClusterUnhealthy marks a live cluster that an authkey rotation will
// not touch (exit 1); the report lists the checks that failed.
var ErrClusterUnhealthy = errors.New("the cluster is not healthy enough for an authkey rotation")

// prechecks judges the live cluster against the config: every configured
// node and remote node known and online, every remote node's connection
// resource active, quorum, no fencing pending or failed, no failed
// actions. override names checks to go past.
func (e *Env) prechecks(st *crmmon.State, override map[string]bool) []Precheck {
	var out []Precheck
	add := func(name string, ok bool, cfg bool, detail string) {
		out = append(out, Precheck{Name: name, OK: ok, Config: cfg, Detail: detail, Overridden: !ok && override[name]})
	}
	if st.Quorate {
		add("quorum", true, false, "the cluster has quorum (DC "+st.DC+")")
	} else {
		add("quorum", false, false, "the cluster has no quorum: restarts would stop resources")
	}

	var missing, offline []string
	known := map[string]bool{}
	for _, h := range e.Config.HostsWithRole(config.RoleNode) {
		known[h.Name] = true
		n, ok := st.Node(h.Name)
		switch {
		case !ok || n.Type == "remote":
			missing = append(missing, h.Name)
		case !n.Online || n.Pending || n.Unclean:
			offline = append(offline, h.Name)
		}
	}
	for _, n := range st.Nodes {
		if n.Type == "member" && !known[n.Name] {
			missing = append(missing, n.Name+" (in the cluster, not in the config's nodes)")
		}
	}
	switch {
	case len(missing) > 0:
		add("nodes", false, true, "the config and the cluster disagree: "+strings.Join(missing, ", ")+" (node names in the config must be the cluster's node names)")
	case len(offline) > 0:
		add("nodes", false, false, "not online: "+strings.Join(offline, ", "))
	default:
		add("nodes", true, false, fmt.Sprintf("%d full nodes online", len(known)))
	}

	missing, offline = nil, nil
	conns := st.RemoteConnections()
	remotes := map[string]bool{}
	for _, h := range e.Config.HostsWithRole(config.RoleRemoteNode) {
		remotes[h.Name] = true
		n, ok := st.Node(h.Name)
		c, hasConn := conns[h.Name]
		switch {
		case !ok || n.Type != "remote" || !hasConn:
			missing = append(missing, h.Name)
		case !n.Online || n.Unclean || !c.Active || c.Failed:
			offline = append(offline, h.Name)
		}
	}
	var extra []string
	for id := range conns {
		if !remotes[id] {
			extra = append(extra, id)
		}
	}
	sort.Strings(extra)
	switch {
	case len(missing) > 0 || len(extra) > 0:
		d := "the config and the cluster disagree:"
		if len(missing) > 0 {
			d += " remote_nodes without a connection resource of that name in the cluster: " + strings.Join(missing, ", ") + ";"
		}
		if len(extra) > 0 {
			d += " remote connection resources not in remote_nodes: " + strings.Join(extra, ", ") + " (they would keep the old key and be fenced);"
		}
		add("remote-nodes", false, true, strings.TrimSuffix(d, ";"))
	case len(offline) > 0:
		add("remote-nodes", false, false, "not connected: "+strings.Join(offline, ", "))
	default:
		add("remote-nodes", true, false, fmt.Sprintf("%d remote nodes connected", len(remotes)))
	}

	var fencing []string
	for _, f := range st.Fencing {
		if f.Status != "success" {
			fencing = append(fencing, f.String())
		}
	}
	if len(fencing) > 0 {
		add("fencing", false, false, "fencing pending or failed: "+strings.Join(fencing, "; "))
	} else {
		add("fencing", true, false, "no fencing pending or failed")
	}

	if len(st.Failures) > 0 {
		var fs []string
		for _, f := range st.Failures {
			fs = append(fs, f.String())
		}
		add("failed-actions", false, false, "failed actions (clean them up first: crm_resource --cleanup): "+strings.Join(fs, "; "))
	} else {
		add("failed-actions", true, false, "no failed actions")
	}
	if st.Maintenance {
		add("maintenance-mode", true, false, "maintenance-mode is already on: it stays on afterwards")
	}
	return out
}

// precheckError is the refusal for the failed, not overridden, checks.
func precheckError(checks []Precheck) error {
	var cfg, health []string
	for _, c := range checks {
		if c.OK || c.Overridden {
			continue
		}
		if c.Config {
			cfg = append(cfg, c.Name+": "+c.Detail)
		} else {
			health = append(health, c.Name+": "+c.Detail)
		}
	}
	switch {
	case len(cfg) > 0:
		return badInput("nothing was changed: %s", strings.Join(append(cfg, health...), "; "))
	case len(health) > 0:
		return fmt.Errorf("%w: nothing was changed: %s (--override CHECK goes past one, if you know why)", ErrClusterUnhealthy, strings.Join(health, "; "))
	}
	return nil
}
