package clusterlab

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// MoveRemote moves the remote node's connection resource to the full node
// to (crm_resource --move, then --clear: stickiness keeps it there), which
// makes that node's controller open a new TLS connection to
// pacemaker-remoted: the authkey on disk matters then, on both ends (2.1.x
// reads it at most every 60 s per process; 3.0.x once per process). It
// returns when the connection runs on to with the remote node online, or
// with an error when the connection failed there (a failed action, or the
// remote node fenced: a failed handshake fences it in ~2 s). At most one
// minute, less if ctx says so.
func (c *Cluster) MoveRemote(ctx context.Context, to string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	began := time.Now()
	fenced := len(c.FenceHistory())
	s, err := c.Status(ctx)
	if err != nil {
		return err
	}
	before := len(s.Failures)
	if r := s.Resource(c.Remote.Name); r != nil && len(r.On) == 1 && r.On[0].Name == to {
		return fmt.Errorf("the connection of %s already runs on %s", c.Remote.Name, to)
	}
	if out, err := c.Exec(ctx, `crm_resource --move --resource "$1" --node "$2" 2>&1`, c.Remote.Name, to); err != nil {
		return fmt.Errorf("crm_resource --move %s to %s: %v: %s", c.Remote.Name, to, err, out)
	}
	defer func() {
		// A lab does not keep the move constraint, whatever happened.
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		if out, err := c.Exec(cctx, `crm_resource --clear --resource "$1" 2>&1`, c.Remote.Name); err != nil {
			c.logf("crm_resource --clear %s: %v: %s", c.Remote.Name, err, out)
		}
	}()
	why := ""
	for {
		if ev := c.FenceHistory(); len(ev) > fenced {
			return fmt.Errorf("moving the connection of %s to %s fenced %s after %v", c.Remote.Name, to,
				ev[len(ev)-1].Victim, ev[len(ev)-1].At.Sub(began).Round(time.Millisecond))
		}
		s, err := c.Status(ctx)
		switch {
		case err != nil:
			why = err.Error()
		case len(s.Failures) > before:
			f := s.Failures[len(s.Failures)-1]
			return fmt.Errorf("moving the connection of %s to %s failed after %v: %s on %s: %s %s", c.Remote.Name, to,
				time.Since(began).Round(time.Millisecond), f.OpKey, f.Node, f.ExitStatus, f.ExitReason)
		default:
			r, n := s.Resource(c.Remote.Name), s.Node(c.Remote.Name)
			if r != nil && r.Active && !r.Failed && len(r.On) == 1 && r.On[0].Name == to && n != nil && n.Online && strings.Contains(s.DCState, "S_IDLE") {
				c.logf("connection of %s moved to %s in %v", c.Remote.Name, to, time.Since(began).Round(time.Millisecond))
				return nil
			}
			why = "DC " + s.DCState
			if r != nil {
				why = fmt.Sprintf("connection on %v, %s", r.Nodes(), why)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the connection of %s did not move to %s: %s (%v)", c.Remote.Name, to, why, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ForceReconnect moves the remote node's connection to the next full node
// that is up (in [Cluster.Nodes] order after the one it runs on): a new
// TLS connection to pacemaker-remoted, as a failover would make. It returns
// that node's name.
func (c *Cluster) ForceReconnect(ctx context.Context) (string, error) {
	s, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	cur := ""
	if r := s.Resource(c.Remote.Name); r != nil && len(r.On) == 1 {
		cur = r.On[0].Name
	}
	start := 0
	for i, n := range c.Nodes {
		if n.Name == cur {
			start = i + 1
		}
	}
	for i := range c.Nodes {
		n := c.Nodes[(start+i)%len(c.Nodes)]
		if ns := s.Node(n.Name); n.Name != cur && ns != nil && ns.Online {
			return n.Name, c.MoveRemote(ctx, n.Name)
		}
	}
	return "", fmt.Errorf("no other full node is online to take the connection of %s (on %q)", c.Remote.Name, cur)
}

// Cleanup runs crm_resource --cleanup for a resource (all when rsc is
// ""): failed actions and fail-counts go, and the cluster tries again (a
// remote node that failed its handshake stays offline until then). It
// first waits (at most a minute) until every full node that is up is
// online and the DC idle: right after a node's pacemaker restarted,
// crm_resource --cleanup blocked for 60 s here.
func (c *Cluster) Cleanup(ctx context.Context, rsc string) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	for wctx.Err() == nil {
		s, err := c.Status(wctx)
		if err == nil && strings.Contains(s.DCState, "S_IDLE") && c.fullNodesOnline(s) {
			break
		}
		sleep(wctx, 300*time.Millisecond)
	}
	cancel()
	args := []string{}
	if rsc != "" {
		args = append(args, "--resource", rsc)
	}
	began := time.Now()
	out, err := c.Exec(ctx, `crm_resource --cleanup "$@" 2>&1`, args...)
	if err != nil {
		return fmt.Errorf("crm_resource --cleanup %s: %v: %s", rsc, err, out)
	}
	c.logf("crm_resource --cleanup %s: %v: %s", rsc, time.Since(began).Round(time.Millisecond), strings.TrimSpace(out))
	return nil
}

// fullNodesOnline reports whether every full node that is up is online in s.
func (c *Cluster) fullNodesOnline(s *Status) bool {
	for _, n := range c.Nodes {
		if ns := s.Node(n.Name); n.Up() && (ns == nil || !ns.Online) {
			return false
		}
	}
	return true
}
