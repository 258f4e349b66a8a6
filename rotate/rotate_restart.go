package rotate

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
)

// versionCommand asks a node which Pacemaker it runs: pacemakerd on a
// cluster node, pacemaker-remoted on a remote node.
const versionCommand = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; pacemakerd --version 2>/dev/null || pacemaker-remoted --version 2>/dev/null"

var versionRE = regexp.MustCompile(`Pacemaker (\d+)\.(\d+)\.(\d+)`)

// cachesAuthkey reports whether a Pacemaker version reads the authkey only
// at start (3.0.2 and later); 2.1.x and 3.0.0-3.0.1 re-read it after 60 s.
// An unknown version is treated as caching it.
func cachesAuthkey(version string) bool {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return true
	}
	v := [3]int{}
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	return v[0] > 3 || (v[0] == 3 && (v[1] > 0 || v[2] >= 2))
}

// RestartStep is what an authkey rotation found, or did, on one node.
type RestartStep struct {
	Host    string       `json:"host"`
	Version string       `json:"version"` // "Pacemaker 2.1.5", or "unknown: …"
	Needed  bool         `json:"needed"`
	Command string       `json:"command,omitempty"`
	State   RestartState `json:"state"`
	// Detail is the prose behind State, for people.
	Detail string `json:"detail,omitempty"`
}

// RestartState is what became of a node's restart.
type RestartState string

// Restart states.
const (
	RestartNotNeeded RestartState = "not_needed"
	RestartNeeded    RestartState = "needed"
	RestartPlanned   RestartState = "planned"
	RestartDone      RestartState = "restarted"
	RestartFailed    RestartState = "failed"
)

// Text is the step's state and detail, for people.
func (s RestartStep) Text() string {
	t := strings.ReplaceAll(string(s.State), "_", " ")
	if s.Detail != "" {
		t += ": " + s.Detail
	}
	return t
}

// restartPlan reads every node's Pacemaker version and, with restart,
// runs the configured restart command on each node whose Pacemaker reads
// the authkey only at start — one node at a time, so the cluster keeps its
// quorum while it can.
func (e *Env) restartPlan(ctx context.Context, restart bool) []RestartStep {
	var hosts []config.Host
	for _, h := range e.Config.Hosts {
		if h.Role.RunsPacemaker() {
			hosts = append(hosts, h)
		}
	}
	steps := make([]RestartStep, len(hosts))
	conns := make([]distribute.Host, len(hosts))
	started := e.each(ctx, len(hosts), func(ctx context.Context, i int) {
		h := hosts[i]
		steps[i] = RestartStep{Host: h.Name, Version: "unknown", Needed: true, Command: e.Config.Restart.Node}
		if h.Role == config.RoleRemoteNode {
			steps[i].Command = e.Config.Restart.RemoteNode
		}
		conn, err := e.connect(ctx, h)
		if err != nil {
			steps[i].Version = "unknown: " + err.Error()
			return
		}
		conns[i] = conn
		out, err := conn.Exec(ctx, versionCommand)
		if m := versionRE.FindString(out); err == nil && m != "" {
			steps[i].Version = m
		} else if err != nil {
			steps[i].Version = "unknown: " + firstLine(err.Error())
		}
		steps[i].Needed = cachesAuthkey(steps[i].Version)
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range steps {
		s := &steps[i]
		switch {
		case started[i] != nil:
			*s = RestartStep{Host: hosts[i].Name, Version: "unknown", Needed: true, State: RestartFailed, Detail: "not checked: " + started[i].Error()}
		case !s.Needed:
			s.State, s.Detail, s.Command = RestartNotNeeded, "this version re-reads the authkey within 60 s", ""
		case !restart:
			s.State, s.Detail = RestartNeeded, "rerun with --restart, or restart it yourself"
		case e.DryRun:
			s.State = RestartPlanned
		case conns[i] == nil:
			s.State, s.Detail = RestartFailed, "unreachable"
		default:
			out, err := conns[i].Exec(ctx, s.Command)
			s.State = RestartDone
			if err != nil {
				s.State, s.Detail = RestartFailed, firstLine(err.Error())+" "+firstLine(out)
			}
		}
	}
	return steps
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// restartNotes turns a plan into the report's notes; failed restarts are
// returned as hosts that failed.
func restartNotes(steps []RestartStep) ([]string, []HostResult) {
	var notes []string
	var failed []HostResult
	for _, s := range steps {
		line := fmt.Sprintf("%s: %s: restart %s", s.Host, s.Version, s.Text())
		if s.Command != "" && s.Needed {
			line += fmt.Sprintf(" (%s)", s.Command)
		}
		notes = append(notes, line)
		if s.State == RestartFailed {
			failed = append(failed, HostResult{Host: s.Host, Status: StatusFailed, Error: "restart " + s.Text()})
		}
	}
	return notes, failed
}
