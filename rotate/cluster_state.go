package rotate

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
)

// The live cluster, as the cluster itself sees it.
//
// An authkey rotation changes the secret every controller and every
// pacemaker-remoted use to talk to each other, so it reads the live
// cluster before it touches anything and waits on what the cluster says,
// never on sleeps: `crm_mon --output-as=xml` on a full node (the same
// document on Pacemaker 2.1 and 3.0: the pacemaker-result API, with
// summary, nodes, resources, failures and fence_history).

// clusterCommand asks a full node for the cluster's state, fencing
// history included (level 3: every event, with its time).
// After the XML, "DCSTATE" and the DC's controller state (crmadmin): a
// cluster settles only when its DC is idle.
const clusterCommand = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
x=$(crm_mon --one-shot --output-as=xml --fence-history=3 2>/dev/null || crm_mon -1 --output-as=xml --fence-history=3) || { printf '%s\n' "$x"; exit 1; }
printf '%s\n' "$x"
dc=$(printf '%s\n' "$x" | sed -n 's/.*<current_dc [^>]* name="\([^"]*\)".*/\1/p')
[ -z "$dc" ] || echo "DCSTATE $(crmadmin -q -S "$dc" 2>&1 | tail -n1)"`

// clusterState is what crm_mon said.
type clusterState struct {
	Quorate     bool
	DC          string
	DCState     string // the DC's controller state, such as S_IDLE
	Maintenance bool
	Nodes       []clusterNode
	Resources   []clusterResource
	Failures    []clusterFailure
	Fencing     []fenceEvent
}

type clusterNode struct {
	Name        string `xml:"name,attr"`
	Online      bool   `xml:"online,attr"`
	Pending     bool   `xml:"pending,attr"`
	Unclean     bool   `xml:"unclean,attr"`
	Standby     bool   `xml:"standby,attr"`
	Maintenance bool   `xml:"maintenance,attr"`
	Type        string `xml:"type,attr"` // member, remote, ping
}

type clusterResource struct {
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

type clusterFailure struct {
	OpKey  string `xml:"op_key,attr"`
	Node   string `xml:"node,attr"`
	Status string `xml:"exitstatus,attr"`
	When   string `xml:"last-rc-change,attr"`
}

func (f clusterFailure) String() string {
	return fmt.Sprintf("%s on %s: %s", f.OpKey, f.Node, f.Status)
}

type fenceEvent struct {
	Action    string `xml:"action,attr"`
	Target    string `xml:"target,attr"`
	Status    string `xml:"status,attr"` // success, failed, pending
	Completed string `xml:"completed,attr"`
	Delegate  string `xml:"delegate,attr"`
}

func (f fenceEvent) String() string {
	s := fmt.Sprintf("%s of %s: %s", f.Action, f.Target, f.Status)
	if f.Completed != "" {
		s += " at " + f.Completed
	}
	return s
}

// crmMonResult is the part of crm_mon's XML that pcmkeys reads.
type crmMonResult struct {
	XMLName xml.Name `xml:"pacemaker-result"`
	Summary struct {
		DC struct {
			Present bool   `xml:"present,attr"`
			Name    string `xml:"name,attr"`
			Quorum  bool   `xml:"with_quorum,attr"`
		} `xml:"current_dc"`
		Options struct {
			Maintenance bool `xml:"maintenance-mode,attr"`
		} `xml:"cluster_options"`
	} `xml:"summary"`
	Nodes     []clusterNode     `xml:"nodes>node"`
	Resources []clusterResource `xml:"resources>resource"`
	Failures  []clusterFailure  `xml:"failures>failure"`
	Fencing   []fenceEvent      `xml:"fence_history>fence_event"`
}

// parseClusterState reads crm_mon's XML.
func parseClusterState(out []byte) (*clusterState, error) {
	var r crmMonResult
	if err := xml.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("crm_mon's XML: %w", err)
	}
	return &clusterState{
		Quorate:     r.Summary.DC.Present && r.Summary.DC.Quorum,
		DC:          r.Summary.DC.Name,
		Maintenance: r.Summary.Options.Maintenance,
		Nodes:       r.Nodes,
		Resources:   r.Resources,
		Failures:    r.Failures,
		Fencing:     r.Fencing,
	}, nil
}

// readCluster asks a full node for the cluster's state.
func readCluster(ctx context.Context, conn distribute.Host) (*clusterState, error) {
	out, err := conn.Exec(ctx, clusterCommand)
	if err != nil {
		return nil, fmt.Errorf("crm_mon on %s: %w", conn.Name(), err)
	}
	return parseClusterOutput(out, conn.Name())
}

// parseClusterOutput reads clusterCommand's output.
func parseClusterOutput(out, from string) (*clusterState, error) {
	i := strings.Index(out, "<pacemaker-result")
	if i < 0 {
		return nil, fmt.Errorf("crm_mon on %s said no XML: %s", from, oneLine(out))
	}
	x, state, _ := strings.Cut(out[i:], "\nDCSTATE ")
	st, err := parseClusterState([]byte(x))
	if err == nil {
		st.DCState = strings.TrimSpace(state)
	}
	return st, err
}

// idle reports why the cluster is not quiet yet, or "": quorate, with a DC
// whose controller is idle (no transition under way).
func (s *clusterState) idle() string {
	switch {
	case !s.Quorate:
		return "the cluster has no quorum"
	case s.DC == "":
		return "the cluster has no DC"
	case !strings.Contains(s.DCState, "S_IDLE"):
		return "the DC " + s.DC + " is busy (" + s.DCState + ")"
	}
	return ""
}

func (s *clusterState) node(name string) (clusterNode, bool) {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return clusterNode{}, false
}

// remoteConnections are the ocf:pacemaker:remote resources, by id (the
// remote node's name).
func (s *clusterState) remoteConnections() map[string]clusterResource {
	out := map[string]clusterResource{}
	for _, r := range s.Resources {
		if r.Agent == "ocf:pacemaker:remote" {
			out[r.ID] = r
		}
	}
	return out
}

// activeResources lists where each active resource runs: "id@node".
func (s *clusterState) activeResources() map[string]bool {
	out := map[string]bool{}
	for _, r := range s.Resources {
		if !r.Active {
			continue
		}
		for _, n := range r.On {
			out[r.ID+"@"+n.Name] = true
		}
	}
	return out
}

// newFencing returns the fence events that are not in before.
func (s *clusterState) newFencing(before *clusterState) []fenceEvent {
	seen := map[fenceEvent]bool{}
	for _, f := range before.Fencing {
		seen[f] = true
	}
	var out []fenceEvent
	for _, f := range s.Fencing {
		if !seen[f] {
			out = append(out, f)
		}
	}
	return out
}

// newFailures returns the failed actions that are not in before.
func (s *clusterState) newFailures(before *clusterState) []clusterFailure {
	seen := map[clusterFailure]bool{}
	for _, f := range before.Failures {
		seen[f] = true
	}
	var out []clusterFailure
	for _, f := range s.Failures {
		if !seen[f] {
			out = append(out, f)
		}
	}
	return out
}

// errNoClusterView is a read of the cluster that found no full node to ask.
var errNoClusterView = errors.New("no full node answered crm_mon")

// liveCluster reports whether a full node answers crm_mon, and which: a
// running cluster, whose authkey only the live procedure may change.
func (e *Env) liveCluster(ctx context.Context) (string, bool) {
	for _, h := range e.Config.HostsWithRole(config.RoleNode) {
		if h.Root != "" {
			continue // an image: nothing runs there
		}
		conn, err := e.connect(ctx, h)
		if err != nil {
			continue
		}
		_, err = readCluster(ctx, conn)
		conn.Close()
		if err == nil {
			return h.Name, true
		}
	}
	return "", false
}
