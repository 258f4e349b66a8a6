// Package crmmon reads the live cluster as the cluster itself sees it.
//
// An authkey rotation changes the secret every controller and every
// pacemaker-remoted use to talk to each other, so pcmkeys reads the live
// cluster before it touches anything and waits on what the cluster says,
// never on sleeps. What it reads is `crm_mon --output-as=xml` on a full node (the same
// document on Pacemaker 2.1 and 3.0: the pacemaker-result API, with
// summary, nodes, resources, failures and fence_history).
package crmmon

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/pcmkeys/pcmkeys/distribute"
)

// Command asks a full node for the cluster's state, fencing
// history included (level 3: every event, with its time).
// After the XML, "DCSTATE" and the DC's controller state (crmadmin): a
// cluster settles only when its DC is idle.
const Command = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
x=$(crm_mon --one-shot --output-as=xml --fence-history=3 2>/dev/null || crm_mon -1 --output-as=xml --fence-history=3) || { printf '%s\n' "$x"; exit 1; }
printf '%s\n' "$x"
dc=$(printf '%s\n' "$x" | sed -n 's/.*<current_dc [^>]* name="\([^"]*\)".*/\1/p')
[ -z "$dc" ] || echo "DCSTATE $(crmadmin -q -S "$dc" 2>&1 | tail -n1)"`

// State is what crm_mon said.
type State struct {
	Quorate     bool
	DC          string
	DCState     string // the DC's controller state, such as S_IDLE
	Maintenance bool
	Nodes       []Node
	Resources   []Resource
	Failures    []Failure
	Fencing     []FenceEvent
}

type Node struct {
	Name        string `xml:"name,attr"`
	Online      bool   `xml:"online,attr"`
	Pending     bool   `xml:"pending,attr"`
	Unclean     bool   `xml:"unclean,attr"`
	Standby     bool   `xml:"standby,attr"`
	Maintenance bool   `xml:"maintenance,attr"`
	Type        string `xml:"type,attr"` // member, remote, ping
}

type Resource struct {
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

type Failure struct {
	OpKey  string `xml:"op_key,attr"`
	Node   string `xml:"node,attr"`
	Status string `xml:"exitstatus,attr"`
	When   string `xml:"last-rc-change,attr"`
}

func (f Failure) String() string {
	return fmt.Sprintf("%s on %s: %s", f.OpKey, f.Node, f.Status)
}

type FenceEvent struct {
	Action    string `xml:"action,attr"`
	Target    string `xml:"target,attr"`
	Status    string `xml:"status,attr"` // success, failed, pending
	Completed string `xml:"completed,attr"`
	Delegate  string `xml:"delegate,attr"`
}

func (f FenceEvent) String() string {
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
	Nodes     []Node       `xml:"nodes>node"`
	Resources []Resource   `xml:"resources>resource"`
	Failures  []Failure    `xml:"failures>failure"`
	Fencing   []FenceEvent `xml:"fence_history>fence_event"`
}

// Parse reads crm_mon's XML.
func Parse(out []byte) (*State, error) {
	var r crmMonResult
	if err := xml.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("crm_mon's XML: %w", err)
	}
	return &State{
		Quorate:     r.Summary.DC.Present && r.Summary.DC.Quorum,
		DC:          r.Summary.DC.Name,
		Maintenance: r.Summary.Options.Maintenance,
		Nodes:       r.Nodes,
		Resources:   r.Resources,
		Failures:    r.Failures,
		Fencing:     r.Fencing,
	}, nil
}

// Read asks a full node for the cluster's state.
func Read(ctx context.Context, conn distribute.Host) (*State, error) {
	out, err := conn.Exec(ctx, Command)
	if err != nil {
		return nil, fmt.Errorf("crm_mon on %s: %w", conn.Name(), err)
	}
	return ParseOutput(out, conn.Name())
}

// ParseOutput reads Command's output on the host named from.
func ParseOutput(out, from string) (*State, error) {
	i := strings.Index(out, "<pacemaker-result")
	if i < 0 {
		return nil, fmt.Errorf("crm_mon on %s said no XML: %s", from, strings.Join(strings.Fields(out), " "))
	}
	x, state, _ := strings.Cut(out[i:], "\nDCSTATE ")
	st, err := Parse([]byte(x))
	if err == nil {
		st.DCState = strings.TrimSpace(state)
	}
	return st, err
}

// Idle reports why the cluster is not quiet yet, or "": quorate, with a DC
// whose controller is Idle (no transition under way).
func (s *State) Idle() string {
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

func (s *State) Node(name string) (Node, bool) {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// RemoteConnections are the ocf:pacemaker:remote resources, by id (the
// remote node's name).
func (s *State) RemoteConnections() map[string]Resource {
	out := map[string]Resource{}
	for _, r := range s.Resources {
		if r.Agent == "ocf:pacemaker:remote" {
			out[r.ID] = r
		}
	}
	return out
}

// ActiveResources lists where each active resource runs: "id@node".
func (s *State) ActiveResources() map[string]bool {
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

// NewFencing returns the fence events that are not in before.
func (s *State) NewFencing(before *State) []FenceEvent {
	seen := map[FenceEvent]bool{}
	for _, f := range before.Fencing {
		seen[f] = true
	}
	var out []FenceEvent
	for _, f := range s.Fencing {
		if !seen[f] {
			out = append(out, f)
		}
	}
	return out
}

// NewFailures returns the failed actions that are not in before.
func (s *State) NewFailures(before *State) []Failure {
	seen := map[Failure]bool{}
	for _, f := range before.Failures {
		seen[f] = true
	}
	var out []Failure
	for _, f := range s.Failures {
		if !seen[f] {
			out = append(out, f)
		}
	}
	return out
}
