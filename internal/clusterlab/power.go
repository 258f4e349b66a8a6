package clusterlab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// FenceEvent is one action the lab's power switch carried out for a fence
// agent: real fencing, as the cluster asked for it.
type FenceEvent struct {
	Victim    string    // node name
	Action    string    // reboot, off or on
	Requester string    // the node whose fenced ran the agent
	At        time.Time // when the victim was killed (or powered on)
	Err       string    // why it failed, or ""
}

// powerSwitch is the lab's power switch: a loop in the test process,
// outside every node, that the fence agent (fence_lab, laid over the fence
// agent directory inside the nodes) asks through files in dir. "off" and
// "reboot" kill every process of the victim; "reboot" boots it again
// after its off time, with its cluster daemons, as a real reboot would.
type powerSwitch struct {
	lab  *Cluster
	dir  string
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	events []FenceEvent
	timers []*time.Timer
}

// fenceAgent is fence_lab: a fence agent of the RHCS kind (stdin
// key=value, or -o ACTION -n PLUG) that asks the power switch through
// files in POWER (the lab's power directory, visible inside the nodes).
const fenceAgent = `#!/bin/sh
# fence_lab: the fence agent of a pcmkeys cluster lab (internal/clusterlab).
# It asks the lab's power switch, a process outside the nodes, to cut the
# power of a node (SIGKILL to all its processes) and to boot it again.
POWER=@POWER@
action=reboot port= node=
if [ $# -gt 0 ]; then
	while [ $# -gt 0 ]; do
		case $1 in -o | --action) action=$2; shift ;; -n | --plug | --port) port=$2; shift ;; esac
		shift
	done
else
	while IFS= read -r line; do
		case ${line%%=*} in
		action | option) action=${line#*=} ;;
		port | plug) port=${line#*=} ;;
		nodename) node=${line#*=} ;;
		esac
	done
fi
[ -n "$port" ] || port=$node
case $action in
metadata)
	cat <<'EOF'
<?xml version="1.0" ?>
<resource-agent name="fence_lab" shortdesc="Power switch of a pcmkeys cluster lab">
<longdesc>Kills every process of a lab node and boots it again.</longdesc>
<parameters>
	<parameter name="action" unique="0" required="1">
		<getopt mixed="-o, --action=[action]"/>
		<content type="string" default="reboot"/>
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="port" unique="0" required="0">
		<getopt mixed="-n, --plug=[id]"/>
		<content type="string"/>
		<shortdesc lang="en">Node to fence</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off"/>
	<action name="reboot"/>
	<action name="status"/>
	<action name="list"/>
	<action name="monitor"/>
	<action name="metadata"/>
	<action name="validate-all"/>
</actions>
</resource-agent>
EOF
	;;
monitor | validate-all) ;;
list | list-status) for f in "$POWER"/state.*; do echo "${f##*/state.},"; done ;;
status)
	case $(cat "$POWER/state.$port" 2>/dev/null) in on) exit 0 ;; off) exit 2 ;; *) echo "no such node: $port" >&2; exit 1 ;; esac ;;
off | reboot | on)
	[ -f "$POWER/state.$port" ] || { echo "no such node: $port" >&2; exit 1; }
	id=$port.$action.$$.$(date +%s%N)
	printf '%s %s %s\n' "$port" "$action" "$(hostname)" >"$POWER/.req.$id"
	mv "$POWER/.req.$id" "$POWER/req.$id"
	i=0
	while [ $i -lt 600 ]; do
		if [ -f "$POWER/done.$id" ]; then
			r=$(cat "$POWER/done.$id")
			rm -f "$POWER/done.$id"
			[ "$r" = ok ] && exit 0
			echo "$r" >&2
			exit 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "the lab's power switch did not answer within 60s" >&2
	exit 1
	;;
*) echo "fence_lab: unknown action $action" >&2; exit 1 ;;
esac
`

func newPowerSwitch(l *Cluster) (*powerSwitch, error) {
	p := &powerSwitch{lab: l, dir: filepath.Join(l.Dir, "power"), stop: make(chan struct{})}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	agent := strings.ReplaceAll(fenceAgent, "@POWER@", p.dir)
	if err := os.WriteFile(filepath.Join(l.Dir, "fence_lab"), []byte(agent), 0o755); err != nil {
		return nil, err
	}
	p.wg.Add(1)
	go p.loop()
	return p, nil
}

// loop answers requests until the lab stops (polling every 100 ms).
func (p *powerSwitch) loop() {
	defer p.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		ents, _ := os.ReadDir(p.dir)
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), "req.") {
				continue
			}
			id := strings.TrimPrefix(e.Name(), "req.")
			b, err := os.ReadFile(filepath.Join(p.dir, e.Name()))
			os.Remove(filepath.Join(p.dir, e.Name()))
			if err != nil {
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				answer := "ok"
				if err := p.handle(strings.Fields(string(b))); err != nil {
					answer = err.Error()
				}
				os.WriteFile(filepath.Join(p.dir, ".done."+id), []byte(answer), 0o644)
				os.Rename(filepath.Join(p.dir, ".done."+id), filepath.Join(p.dir, "done."+id))
			}()
		}
	}
}

// handle carries out one request: victim, action, requester.
func (p *powerSwitch) handle(f []string) error {
	if len(f) != 3 {
		return fmt.Errorf("bad request %q", f)
	}
	ev := FenceEvent{Victim: f[0], Action: f[1], Requester: f[2], At: time.Now()}
	n := p.lab.Node(ev.Victim)
	var err error
	switch {
	case n == nil:
		err = fmt.Errorf("no such node: %s", ev.Victim)
	case ev.Action == "on":
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err = n.PowerOn(ctx)
		cancel()
	case ev.Action == "off" || ev.Action == "reboot":
		n.PowerOff()
		ev.At = time.Now()
		if ev.Action == "reboot" {
			off := p.lab.opts.FullOff
			if n.Remote {
				off = p.lab.opts.RemoteOff
			}
			p.after(off, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				if err := n.PowerOn(ctx); err != nil {
					p.lab.logf("power switch: booting %s after fencing: %v", n.Name, err)
				}
			})
		}
	default:
		err = fmt.Errorf("unknown action %q", ev.Action)
	}
	if err != nil {
		ev.Err = err.Error()
	}
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	p.lab.logf("power switch: %s %s for %s (%v)", ev.Action, ev.Victim, ev.Requester, err)
	return err
}

// after runs f after d unless the lab stops first.
func (p *powerSwitch) after(d time.Duration, f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stop:
		return
	default:
	}
	p.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer p.wg.Done()
		select {
		case <-p.stop:
			return
		default:
		}
		f()
	})
	p.timers = append(p.timers, t)
}

// setState records whether a node has power, for the agent's status.
func (p *powerSwitch) setState(n *Node, on bool) {
	s := "off"
	if on {
		s = "on"
	}
	os.WriteFile(filepath.Join(p.dir, "state."+n.Name), []byte(s), 0o644)
}

// close stops the switch: no more requests, no pending boots (bounded).
func (p *powerSwitch) close() {
	p.mu.Lock()
	select {
	case <-p.stop:
		p.mu.Unlock()
		return
	default:
	}
	close(p.stop)
	for _, t := range p.timers {
		if t.Stop() {
			p.wg.Done()
		}
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
	}
}

// FenceHistory is every action the power switch carried out, oldest first.
func (c *Cluster) FenceHistory() []FenceEvent {
	c.power.mu.Lock()
	defer c.power.mu.Unlock()
	return append([]FenceEvent(nil), c.power.events...)
}
