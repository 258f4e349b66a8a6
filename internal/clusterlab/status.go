package clusterlab

import (
	"context"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Status is the cluster as `crm_mon --output-as=xml` on a full node sees
// it.
type Status struct {
	Quorate         bool
	DC              string // "" without a DC
	DCState         string // the DC's controller state (S_IDLE when no transition runs)
	MaintenanceMode bool
	Nodes           []NodeStatus
	Resources       []ResourceStatus
	Failures        []FailedAction
	Fencing         []ClusterFenceEvent // the cluster's fence history
	XML             string              // crm_mon's output
}

// NodeStatus is one <node> of crm_mon.
type NodeStatus struct {
	Name        string `xml:"name,attr"`
	Type        string `xml:"type,attr"` // member or remote
	Online      bool   `xml:"online,attr"`
	Standby     bool   `xml:"standby,attr"`
	Maintenance bool   `xml:"maintenance,attr"`
	Pending     bool   `xml:"pending,attr"`
	Unclean     bool   `xml:"unclean,attr"`
	Shutdown    bool   `xml:"shutdown,attr"`
}

// ResourceStatus is one primitive <resource> of crm_mon.
type ResourceStatus struct {
	ID      string `xml:"id,attr"`
	Agent   string `xml:"resource_agent,attr"`
	Role    string `xml:"role,attr"`
	Active  bool   `xml:"active,attr"`
	Failed  bool   `xml:"failed,attr"`
	Managed bool   `xml:"managed,attr"`
	On      []struct {
		Name string `xml:"name,attr"`
	} `xml:"node"`
}

// Nodes are the names of the nodes it runs on.
func (r ResourceStatus) Nodes() []string {
	var names []string
	for _, n := range r.On {
		names = append(names, n.Name)
	}
	return names
}

// FailedAction is one <failure> of crm_mon (a failed action).
type FailedAction struct {
	OpKey      string `xml:"op_key,attr"`
	Node       string `xml:"node,attr"`
	Task       string `xml:"task,attr"`
	ExitStatus string `xml:"exitstatus,attr"`
	ExitReason string `xml:"exitreason,attr"`
	Status     string `xml:"status,attr"`
	LastChange string `xml:"last-rc-change,attr"`
}

// ClusterFenceEvent is one <fence_event> of crm_mon's fence history.
type ClusterFenceEvent struct {
	Action    string `xml:"action,attr"`
	Target    string `xml:"target,attr"`
	Status    string `xml:"status,attr"` // success, failed, pending
	Delegate  string `xml:"delegate,attr"`
	Origin    string `xml:"origin,attr"`
	Completed string `xml:"completed,attr"`
}

type crmMon struct {
	Summary struct {
		DC struct {
			Present    bool   `xml:"present,attr"`
			Name       string `xml:"name,attr"`
			WithQuorum bool   `xml:"with_quorum,attr"`
		} `xml:"current_dc"`
		Options struct {
			MaintenanceMode bool `xml:"maintenance-mode,attr"`
		} `xml:"cluster_options"`
	} `xml:"summary"`
	Nodes     []NodeStatus        `xml:"nodes>node"`
	Resources []ResourceStatus    `xml:"resources>resource"`
	Failures  []FailedAction      `xml:"failures>failure"`
	Fencing   []ClusterFenceEvent `xml:"fence_history>fence_event"`
}

// Exec runs a bash script on the first full node that is up and answers.
func (c *Cluster) Exec(ctx context.Context, script string, args ...string) (string, error) {
	var out string
	err := fmt.Errorf("no full node is up")
	for _, n := range c.Nodes {
		if !n.Up() {
			continue
		}
		if out, err = n.Exec(ctx, script, args...); err == nil || ctx.Err() != nil {
			break
		}
		err = fmt.Errorf("on %s: %v: %s", n.Name, err, strings.TrimSpace(out))
	}
	return out, err
}

// Status reads the cluster's state with crm_mon on a full node (and the
// DC's controller state with crmadmin).
func (c *Cluster) Status(ctx context.Context) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := c.Exec(ctx, `x=$(crm_mon --output-as=xml -1 --fence-history=3 2>&1) || { echo "$x"; exit 1; }
printf '%s\n' "$x"
dc=$(sed -n 's/.*<current_dc [^>]* name="\([^"]*\)".*/\1/p' <<<"$x")
[ -z "$dc" ] || echo "DCSTATE $(crmadmin -q -S "$dc" 2>&1 | tail -n1)"`)
	if err != nil {
		return nil, fmt.Errorf("crm_mon: %v", err)
	}
	x, state, _ := strings.Cut(out, "\nDCSTATE ")
	var m crmMon
	if err := xml.Unmarshal([]byte(x), &m); err != nil {
		return nil, fmt.Errorf("crm_mon's XML: %v: %s", err, x)
	}
	s := &Status{Quorate: m.Summary.DC.WithQuorum, MaintenanceMode: m.Summary.Options.MaintenanceMode,
		Nodes: m.Nodes, Resources: m.Resources, Failures: m.Failures, Fencing: m.Fencing, XML: x,
		DCState: strings.TrimSpace(state)}
	if m.Summary.DC.Present {
		s.DC = m.Summary.DC.Name
	}
	return s, nil
}

// Resource is the resource with that id, or nil.
func (s *Status) Resource(id string) *ResourceStatus {
	for i := range s.Resources {
		if s.Resources[i].ID == id {
			return &s.Resources[i]
		}
	}
	return nil
}

// Node is the node with that name, or nil.
func (s *Status) Node(name string) *NodeStatus {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i]
		}
	}
	return nil
}

// Unsettled says why the cluster is not settled, or "": quorate, a DC
// that is idle, every lab node online (none unclean, pending or shutting
// down), the remote connection and every resource started, no fencing
// pending.
func (c *Cluster) Unsettled(s *Status) string {
	if !s.Quorate {
		return "not quorate"
	}
	if s.DC == "" {
		return "no DC"
	}
	if !strings.Contains(s.DCState, "S_IDLE") {
		return "DC " + s.DC + " is in " + s.DCState
	}
	for _, n := range c.All() {
		ns := s.Node(n.Name)
		switch {
		case ns == nil:
			return n.Name + " unknown to the cluster"
		case !ns.Online || ns.Unclean || ns.Pending || ns.Shutdown:
			return fmt.Sprintf("%s: %+v", n.Name, *ns)
		}
	}
	for _, id := range []string{FenceDevice, c.Remote.Name, DummyRemote, DummyNode} {
		r := s.Resource(id)
		switch {
		case r == nil:
			return id + " not in crm_mon's resources"
		case r.Role != "Started" || !r.Active || r.Failed || len(r.On) != 1:
			return fmt.Sprintf("%s: role %s active %v failed %v on %v", id, r.Role, r.Active, r.Failed, r.Nodes())
		}
	}
	for _, f := range s.Fencing {
		if f.Status == "pending" {
			return fmt.Sprintf("fencing of %s pending", f.Target)
		}
	}
	return ""
}

// WaitSettled waits (at most 3 minutes, less if ctx says so) until the
// cluster has settled ([Cluster.Unsettled]) and returns its status.
func (c *Cluster) WaitSettled(ctx context.Context) error {
	_, err := c.waitSettled(ctx)
	return err
}

func (c *Cluster) waitSettled(ctx context.Context) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	why, said, saidAt := "", "", time.Now()
	for {
		// What it waits for, after 10 s, then when that changes (at most
		// every 10 s) or every 30 s.
		if wait := time.Since(saidAt); why != "" && wait > 10*time.Second && (why != said || wait > 30*time.Second) {
			c.logf("waiting for the cluster to settle: %s", why)
			said, saidAt = why, time.Now()
		}
		s, err := c.Status(ctx)
		if err == nil {
			if why = c.Unsettled(s); why == "" {
				return s, nil
			}
		} else {
			why = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster not settled: %s (%v)", why, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// FailedActions are the cluster's failed actions now.
func (c *Cluster) FailedActions(ctx context.Context) ([]FailedAction, error) {
	s, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	return s.Failures, nil
}

// DummyStart is where a Dummy resource runs and when it last started
// (the modification time of its state file, /run/Dummy-ID.state).
type DummyStart struct {
	Node string
	At   time.Time
}

// DummyStarts reads every Dummy state file on every node that is up, by
// resource id. A Dummy that restarted has a later time, one that moved has
// another node.
func (c *Cluster) DummyStarts(ctx context.Context) (map[string]DummyStart, error) {
	res := map[string]DummyStart{}
	for _, n := range c.All() {
		if !n.Up() {
			continue
		}
		out, err := n.Exec(ctx, `for f in /run/Dummy-*.state; do [ ! -e "$f" ] || stat -c '%n %.9Y' "$f"; done`)
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %s", n.Name, err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			id := strings.TrimSuffix(strings.TrimPrefix(f[0], "/run/Dummy-"), ".state")
			sec, frac, _ := strings.Cut(f[1], ".")
			s, err1 := strconv.ParseInt(sec, 10, 64)
			ns, err2 := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s: stat: %q", n.Name, line)
			}
			if old, ok := res[id]; ok {
				return nil, fmt.Errorf("Dummy %s runs on %s and %s", id, old.Node, n.Name)
			}
			res[id] = DummyStart{Node: n.Name, At: time.Unix(s, ns)}
		}
	}
	return res, nil
}
