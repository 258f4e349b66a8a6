package rotate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/policies"
	"github.com/pcmkeys/pcmkeys/rotate/internal/crmmon"
)

// An authkey rotation on a live cluster (rotate --authkey --restart).
//
// Every controller and every pacemaker-remoted must hold the same key
// whenever a new connection is made (a failover, a move, a restart): a node
// and a remote node that disagree cannot connect, and the remote node is
// fenced. 2.1.x and 3.0.0–3.0.1 re-read the key within 60 s; 3.0.2 and
// later only at start. The one procedure with no fencing, no failed action
// and no resource restart (verified on a live lab with both): maintenance
// mode on → the new key committed everywhere → restart pacemaker-remoted on
// each remote node, then pacemaker on each full node, one at a time, each
// waited until the cluster sees it back → (for versions that re-read the
// key, wait past their 60 s cache) → maintenance mode back to what it was →
// wait until the cluster has re-probed and every resource runs where it
// ran. Every wait is on what crm_mon says, with a bound. When a restart or
// a post-check fails, the old key goes back everywhere and the restarted
// daemons are restarted again, still in maintenance mode, which is then
// restored; the run exits non-zero with its timeline.

// Bounds of the live procedure's waits.
const (
	restartBound  = 3 * time.Minute // a restarted daemon back in the cluster's view
	settleBound   = 3 * time.Minute // resources re-probed after maintenance mode
	cacheWindow   = 65 * time.Second
	pollInterval  = time.Second
	maintenanceRW = "crm_attribute --type crm_config --name maintenance-mode"
)

// TimelineStep is one step of a live rotation, with its time since the
// run began.
type TimelineStep struct {
	At     string `json:"at"`
	Host   string `json:"host,omitempty"`
	Step   string `json:"step"`
	Result string `json:"result"`
}

// liveRotation carries a live authkey rotation from its checks to its end.
type liveRotation struct {
	e       *Env
	rep     *Report
	began   time.Time
	before  *crmmon.State
	maint   string // maintenance-mode's value before the run ("" for unset)
	maintOn bool   // this run turned maintenance mode on
	plan    []RestartStep
	hosts   map[string]config.Host
	done    []config.Host // restarted with the new key
	resumed bool          // maintenance mode was left on by a killed run
	// starts is when each host's key-holding daemon (controller or
	// pacemaker-remoted) started, as of the last look: one that started
	// again without pcmkeys restarting it was restarted or fenced.
	starts map[string]float64
}

// startLive reads the live cluster and checks it, and makes the plan
// (each node's version and whether it needs a restart). Nothing changes.
func (e *Env) startLive(ctx context.Context, override map[string]bool, rep *Report) (*liveRotation, error) {
	lv := &liveRotation{e: e, rep: rep, began: time.Now(), hosts: map[string]config.Host{}, starts: map[string]float64{}}
	for _, h := range e.Config.Hosts {
		lv.hosts[h.Name] = h
	}
	st, from, err := lv.read(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("read the live cluster before touching it: %w", err)
	}
	lv.before = st
	lv.log(from, "read the cluster (crm_mon)", "ok")
	saved, killed := lv.readMarker(ctx)
	if killed && st.Maintenance {
		// A killed run's maintenance mode: this run finishes its job. Its
		// remote nodes may be disconnected (remoted restarted with the new
		// key while maintenance mode stopped the cluster reconnecting):
		// that is what this run repairs, not a reason to refuse.
		lv.resumed = true
		lv.log("", "an earlier run was killed midway", "maintenance mode is its doing: this run rotates again and then puts it back to "+map[bool]string{true: "unset", false: saved}[saved == ""])
		rep.Notes = append(rep.Notes, "an earlier authkey rotation was killed midway (its marker was on the nodes): this run finishes it")
		override = maps.Clone(override)
		override["remote-nodes"] = true
	}
	rep.Prechecks = e.prechecks(st, override)
	if err := precheckError(rep.Prechecks); err != nil {
		return nil, err
	}
	out, _, err := lv.clusterExec(ctx, "", maintenanceRW+" --query --quiet")
	if err == nil {
		lv.maint = strings.TrimSpace(out)
	}
	if lv.resumed {
		lv.maint = saved
	}

	for _, h := range lv.hosts {
		if h.Role.RunsPacemaker() {
			lv.starts[h.Name] = lv.daemonStart(ctx, h)
		}
	}
	lv.plan = e.restartPlan(ctx, false)
	for i := range lv.plan {
		if lv.plan[i].Needed {
			lv.plan[i].State = RestartPlanned
		}
	}
	rep.Restart = lv.plan
	return lv, nil
}

func (lv *liveRotation) log(host, step, result string) {
	at := fmt.Sprintf("+%.1fs", time.Since(lv.began).Seconds())
	lv.rep.Timeline = append(lv.rep.Timeline, TimelineStep{At: at, Host: host, Step: step, Result: result})
	lv.e.log().Info("live rotation", "at", at, "host", host, "step", step, "result", result)
}

// clusterExec runs a cluster command on the first full node that answers,
// over a fresh connection (a node that rebooted or was fenced gets a new
// one), avoiding the host named avoid where another node exists.
func (lv *liveRotation) clusterExec(ctx context.Context, avoid, command string) (string, string, error) {
	var errs []error
	nodes := lv.e.Config.HostsWithRole(config.RoleNode)
	for pass := 0; pass < 2; pass++ {
		for _, h := range nodes {
			if (pass == 0) == (h.Name == avoid) {
				continue
			}
			conn, err := lv.e.connect(ctx, h)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out, err := conn.Exec(ctx, command)
			conn.Close()
			if err == nil {
				return out, h.Name, nil
			}
			errs = append(errs, err)
		}
	}
	return "", "", fmt.Errorf("%w: %v", errNoClusterView, errors.Join(errs...))
}

func (lv *liveRotation) read(ctx context.Context, avoid string) (*crmmon.State, string, error) {
	out, from, err := lv.clusterExec(ctx, avoid, crmmon.Command)
	if err != nil {
		return nil, "", err
	}
	st, err := crmmon.ParseOutput(out, from)
	return st, from, err
}

// waitFor polls the cluster (from a node other than avoid) until cond
// holds or bound passes; the error says what was still missing.
func (lv *liveRotation) waitFor(ctx context.Context, avoid string, bound time.Duration, cond func(*crmmon.State) string) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	why := "no answer yet"
	for {
		if st, _, err := lv.read(ctx, avoid); err != nil {
			why = err.Error()
		} else if why = cond(st); why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still not so after %s: %s", bound, why)
		case <-time.After(pollInterval):
		}
	}
}

// maintenanceOn turns maintenance mode on, unless it is on already.
func (lv *liveRotation) maintenanceOn(ctx context.Context) error {
	if lv.resumed {
		lv.maintOn = true // the killed run's: ours to put back
		lv.log("", "maintenance mode", "already on (left by the killed run)")
		return nil
	}
	if lv.before.Maintenance {
		lv.log("", "maintenance mode", "already on")
		return nil
	}
	if err := lv.writeMarker(ctx); err != nil {
		lv.log("", "the run's marker", "failed: "+err.Error())
		return err
	}
	_, from, err := lv.clusterExec(ctx, "", maintenanceRW+" --update true")
	if err != nil {
		lv.log(from, "maintenance mode on", "failed: "+err.Error())
		return err
	}
	lv.maintOn = true
	lv.log(from, "maintenance mode on", "ok")
	return lv.waitFor(ctx, "", time.Minute, func(st *crmmon.State) string {
		if !st.Maintenance {
			return "maintenance mode is not on yet"
		}
		return ""
	})
}

// maintenanceRestore puts maintenance mode back to what it was. A failure
// is said loudly: the cluster must never stay in maintenance mode unsaid.
func (lv *liveRotation) maintenanceRestore(ctx context.Context) error {
	if !lv.maintOn {
		return nil
	}
	cmd := maintenanceRW + " --delete"
	if lv.maint != "" {
		cmd = maintenanceRW + " --update " + shellQuote(lv.maint)
	}
	_, from, err := lv.clusterExec(context.WithoutCancel(ctx), "", cmd)
	if err != nil {
		lv.log(from, "maintenance mode back", "failed: "+err.Error())
		lv.rep.Notes = append(lv.rep.Notes, "THE CLUSTER IS STILL IN MAINTENANCE MODE: resources are not managed. On a full node run: "+cmd)
		return err
	}
	lv.maintOn = false
	lv.log(from, "maintenance mode back", "ok ("+map[bool]string{true: "unset", false: lv.maint}[lv.maint == ""]+")")
	lv.removeMarker(ctx)
	return nil
}

// remotedUp is true on a host where pacemaker-remoted listens (3121).
const remotedUp = "ss -Hltn '( sport = :3121 )' | grep -q . && echo up || echo down"

// restart restarts the daemon of one host and waits until it is back: a
// full node online in a quorate cluster's view; a remote node's
// pacemaker-remoted listening again. (In maintenance mode the cluster does
// not reconnect a remote node by itself: the controllers, restarted next
// with the new key, reconnect it once maintenance mode is lifted.)
func (lv *liveRotation) restart(ctx context.Context, s RestartStep) error {
	h := lv.hosts[s.Host]
	conn, err := lv.e.connect(ctx, h)
	if err == nil {
		var out string
		out, err = conn.Exec(ctx, s.Command)
		conn.Close()
		if err != nil {
			err = fmt.Errorf("%w %s", err, oneLine(out)) // Exec's error names the command
		}
	}
	if err != nil {
		lv.log(h.Name, "restart", "failed: "+err.Error())
		return fmt.Errorf("restart: %w", err)
	}
	if !slices.Contains(lv.done, h) {
		lv.done = append(lv.done, h) // it holds the new key now, whatever follows
	}
	if h.Role == config.RoleRemoteNode {
		lv.log(h.Name, "restart ("+s.Command+")", "done; waiting for pacemaker-remoted to listen")
		return lv.waitRemoted(ctx, h)
	}
	lv.log(h.Name, "restart ("+s.Command+")", "done; waiting for the cluster to see it back")
	err = lv.waitFor(ctx, h.Name, restartBound, func(st *crmmon.State) string {
		n, ok := st.Node(h.Name)
		if !ok || !n.Online || n.Pending || n.Unclean {
			return h.Name + " is not online in the cluster's view"
		}
		return st.Idle() // rejoined: the DC has finished with it
	})
	if err != nil {
		lv.log(h.Name, "back in the cluster", "failed: "+err.Error())
		return fmt.Errorf("%s after its restart: %w", h.Name, err)
	}
	lv.log(h.Name, "back in the cluster", "ok")
	lv.starts[h.Name] = lv.daemonStart(ctx, h)
	return nil
}

// keyDaemon is the daemon of a probe that holds the authkey.
func keyDaemon(p *nodeProbe) (probedDaemon, bool) {
	if d, ok := p.daemons["pacemaker-remoted"]; ok {
		return d, true
	}
	d, ok := p.daemons["pacemaker-controld"]
	return d, ok
}

// daemonStart is when h's key-holding daemon started (0: unknown).
func (lv *liveRotation) daemonStart(ctx context.Context, h config.Host) float64 {
	conn, err := lv.e.connect(ctx, h)
	if err != nil {
		return 0
	}
	defer conn.Close()
	p, err := lv.e.probeNode(ctx, conn, h)
	if err != nil {
		return 0
	}
	d, _ := keyDaemon(p)
	return d.start
}

// planVersion is the Pacemaker version the plan found on host.
func (lv *liveRotation) planVersion(host string) string {
	for _, s := range lv.plan {
		if s.Host == host {
			return s.Version
		}
	}
	return ""
}

// waitRemoted waits until pacemaker-remoted listens on h again.
func (lv *liveRotation) waitRemoted(ctx context.Context, h config.Host) error {
	ctx, cancel := context.WithTimeout(ctx, restartBound)
	defer cancel()
	for {
		conn, err := lv.e.connect(ctx, h)
		if err == nil {
			out, _ := conn.Exec(ctx, remotedUp)
			conn.Close()
			if strings.TrimSpace(out) == "up" {
				lv.log(h.Name, "pacemaker-remoted listens", "ok")
				lv.starts[h.Name] = lv.daemonStart(ctx, h)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			lv.log(h.Name, "pacemaker-remoted listens", "failed: not after "+restartBound.String())
			return fmt.Errorf("pacemaker-remoted on %s does not listen %s after its restart", h.Name, restartBound)
		case <-time.After(pollInterval):
		}
	}
}

// restartAll restarts, in the plan's order (remote nodes first, then full
// nodes one at a time), every daemon that reads the authkey only at start,
// and waits out the cache of the others.
func (lv *liveRotation) restartAll(ctx context.Context, committed time.Time) error {
	reread := false
	for _, role := range []config.Role{config.RoleRemoteNode, config.RoleNode} {
		for i := range lv.plan {
			s := &lv.plan[i]
			if lv.hosts[s.Host].Role != role {
				continue
			}
			if !s.Needed {
				reread = true
				continue
			}
			if err := lv.restart(ctx, *s); err != nil {
				s.State, s.Detail = RestartFailed, err.Error()
				return err
			}
			s.State = RestartDone
		}
	}
	if wait := time.Until(committed.Add(cacheWindow)); reread && wait > 0 {
		lv.log("", "wait for 2.1.x / 3.0.0–3.0.1 to re-read the key", fmt.Sprintf("%.0f s", wait.Seconds()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return nil
}

// settle waits, after maintenance mode is back, until every node and
// remote node is online and every resource runs where it ran before, and
// then checks that no fencing and no failed action happened meanwhile.
func (lv *liveRotation) settle(ctx context.Context) error {
	want := lv.before.ActiveResources()
	err := lv.waitFor(ctx, "", settleBound, func(st *crmmon.State) string {
		if why := st.Idle(); why != "" {
			return why
		}
		for _, n := range st.Nodes {
			if !n.Online || n.Pending || n.Unclean {
				return n.Name + " is not online"
			}
		}
		have := st.ActiveResources()
		for r := range want {
			if !have[r] {
				return "resource " + r + " does not run there (yet)"
			}
		}
		return ""
	})
	if err != nil {
		lv.log("", "cluster settled", "failed: "+err.Error())
		return err
	}
	lv.log("", "cluster settled", "ok: every node online, every resource where it was")
	return nil
}

// postChecks compares the cluster with the one before: no fencing, no new
// failed action.
func (lv *liveRotation) postChecks(ctx context.Context) error {
	st, from, err := lv.read(ctx, "")
	if err != nil {
		return err
	}
	var problems []string
	for _, f := range st.NewFencing(lv.before) {
		problems = append(problems, "fencing during the run: "+f.String())
	}
	for _, f := range st.NewFailures(lv.before) {
		problems = append(problems, "a new failed action: "+f.String())
	}
	problems = append(problems, lv.keyInUse(ctx)...)
	if len(problems) > 0 {
		lv.log(from, "post-checks", "failed: "+strings.Join(problems, "; "))
		return errors.New(strings.Join(problems, "; "))
	}
	lv.log(from, "post-checks", "ok: no fencing, no new failed action, no key-holding daemon on an old key (by version and start time), none started again behind the run")
	return nil
}

// keyInUse asks every node and remote node (doctor's probe: a TLS-PSK
// handshake to 3121 with the key on disk) whether its running daemon
// accepts the authkey its file holds.
func (lv *liveRotation) keyInUse(ctx context.Context) []string {
	var problems []string
	path := lv.e.Config.Policy.Files[policies.Authkey].Path
	for _, h := range lv.hosts {
		if !h.Role.RunsPacemaker() {
			continue
		}
		conn, err := lv.e.connect(ctx, h)
		if err != nil {
			problems = append(problems, h.Name+": "+err.Error())
			continue
		}
		p, err := lv.e.probeNode(ctx, conn, h)
		conn.Close()
		if err != nil {
			problems = append(problems, h.Name+": "+err.Error())
			continue
		}
		checkAuthkeyInUse(p, path, lv.planVersion(h.Name), func(c Check) {
			if !c.OK {
				problems = append(problems, h.Name+": "+c.Detail)
			}
		})
		// Fencing history does not survive a restart of every node: a
		// daemon that started again behind pcmkeys's back says it.
		if d, ok := keyDaemon(p); ok && lv.starts[h.Name] != 0 && d.start-lv.starts[h.Name] > 1 {
			problems = append(problems, fmt.Sprintf("%s: %s started again during the run (fenced or restarted outside the plan)", h.Name, d.name))
		}
	}
	sort.Strings(problems)
	return problems
}
