package clusterlab

import (
	"fmt"
	"strings"
)

// systemctlShim is /usr/bin/systemctl inside the nodes: no systemd runs
// there, so it starts and stops the cluster daemons the way their units
// would (Debian's pacemaker.service needs corosync.service; both read
// /etc/default/pacemaker), so that pcmkeys's default restart commands
// (`systemctl restart pacemaker`, `systemctl restart pacemaker_remote`)
// work unchanged. A unit whose program the node does not have is "not
// found", as on a real node (no pacemaker unit on the remote node). Every
// wait is bounded.
const systemctlShim = `#!/bin/bash
# systemctl of a pcmkeys cluster lab node (internal/clusterlab): no systemd
# runs here; this starts and stops the cluster daemons as their units would.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
verb= units=()
for a; do
	case $a in -*) ;; *) if [ -z "$verb" ]; then verb=$a; else units+=("${a%.service}"); fi ;; esac
done
prog() {
	case $1 in
	pacemaker) echo pacemakerd ;;
	pacemaker_remote | pacemaker-remote) echo pacemaker-remoted ;;
	corosync) echo corosync ;;
	esac
}
daemons() {
	case $1 in
	pacemaker) echo pacemakerd pacemaker-based pacemaker-fenced pacemaker-execd pacemaker-attrd pacemaker-schedulerd pacemaker-controld ;;
	*) prog "$1" ;;
	esac
}
exists() { p=$(prog "$1"); [ -n "$p" ] && command -v "$p" >/dev/null; }
active() { pidof -q "$(prog "$1")"; }
anyleft() { pidof -q $(daemons "$1"); }
env_run() {
	(
		set -a
		[ ! -r /etc/default/pacemaker ] || . /etc/default/pacemaker
		set +a
		cd /
		exec setsid -f "$@" </dev/null >>/var/log/pacemaker/daemons.out 2>&1
	)
}
waitfor() { # seconds command…: true once the command succeeds
	local n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}
gone() { ! anyleft "$1"; }
signal() { # SIG program…
	local sig=$1 pids
	shift
	pids=$(pidof "$@") && kill -"$sig" $pids
}
listening() { ss -Hltn 'sport = :3121' | grep -q .; }
start() {
	active "$1" && return 0
	case $1 in
	corosync)
		env_run corosync -f
		waitfor 30 corosync-cfgtool -s >/dev/null 2>&1 || { echo "corosync did not start; see /var/log/corosync/corosync.log" >&2; return 1; } ;;
	pacemaker)
		start corosync || return 1
		env_run pacemakerd
		waitfor 10 active pacemaker || { echo "pacemakerd exited; see /var/log/pacemaker/pacemaker.log" >&2; return 1; } ;;
	*)
		env_run pacemaker-remoted
		waitfor 20 listening || { echo "pacemaker-remoted does not listen; see /var/log/pacemaker/pacemaker.log" >&2; return 1; } ;;
	esac
}
stop() {
	[ "$1" != corosync ] || ! exists pacemaker || stop pacemaker
	anyleft "$1" || return 0
	signal TERM "$(prog "$1")"
	if ! waitfor 120 gone "$1"; then
		echo "$1 did not stop within 120s: killed" >&2
		signal KILL $(daemons "$1")
		waitfor 10 gone "$1"
	fi
}
rc=0
for u in "${units[@]}"; do
	if ! exists "$u"; then
		echo "Unit $u.service could not be found." >&2
		case $verb in is-active | status) echo inactive; rc=4 ;; *) rc=5 ;; esac
		continue
	fi
	case $verb in
	start) start "$u" || rc=1 ;;
	stop) stop "$u" || rc=1 ;;
	restart | try-restart | reload-or-restart | force-reload) stop "$u" && start "$u" || rc=1 ;;
	is-active) if active "$u"; then echo active; else echo inactive; rc=3; fi ;;
	status) if active "$u"; then echo "* $u.service"; echo "     Active: active (running)"; else echo "* $u.service"; echo "     Active: inactive (dead)"; rc=3; fi ;;
	is-enabled) echo enabled ;;
	enable | disable | reset-failed | daemon-reload) ;;
	*) echo "systemctl (lab shim): $verb is not supported" >&2; rc=1 ;;
	esac
done
[ -n "$verb" ] || { echo "systemctl (lab shim): no verb" >&2; rc=1; }
[ "$verb" != daemon-reload ] || rc=0
exit $rc
`

// defaultPacemaker is the nodes' /etc/default/pacemaker: logs to files on
// the node's disk, none to syslog (no syslog runs in a node).
const defaultPacemaker = `# /etc/default/pacemaker of a pcmkeys cluster lab node
PCMK_logfile=/var/log/pacemaker/pacemaker.log
PCMK_logfacility=none
PCMK_debug=no
`

// corosyncConf is the full nodes' corosync.conf: knet, the 3 nodes,
// crypto with /etc/corosync/authkey, token 5000 ms (membership stays
// stable on 2 busy cores; a fenced node must stay off longer than token +
// consensus, ~12 s).
func corosyncConf(nodes []*Node) string {
	var b strings.Builder
	b.WriteString(`totem {
	version: 2
	cluster_name: pcmkeys-lab
	transport: knet
	token: 5000
	crypto_cipher: aes256
	crypto_hash: sha256
}
nodelist {
`)
	for i, n := range nodes {
		fmt.Fprintf(&b, "\tnode {\n\t\tring0_addr: %s\n\t\tname: %s\n\t\tnodeid: %d\n\t}\n", n.Addr, n.Name, i+1)
	}
	b.WriteString(`}
quorum {
	provider: corosync_votequorum
}
logging {
	to_logfile: yes
	logfile: /var/log/corosync/corosync.log
	to_syslog: no
	to_stderr: no
	timestamp: on
}
`)
	return b.String()
}

// Resource ids of the lab's CIB.
const (
	FenceDevice = "fence-lab"
	DummyRemote = "dummy-remote" // prefers the remote node
	DummyNode   = "dummy-node"   // prefers the first full node
)

// cibXML is the CIB every full node starts from (owned by hacluster; no
// cib.xml.sig is needed): stonith-enabled=true, dc-deadtime=5s (the first
// election comes 15 s sooner than with the default 20 s), with the lab's fence
// device for every node, the remote node's ocf:pacemaker:remote connection
// resource (server = its address, no reconnect_interval), resource-stickiness=1
// (as pcs sets it: a connection stays where it is), and two
// ocf:pacemaker:Dummy resources, one preferring the remote node and one the
// first full node (score 100: a Dummy moved away comes back).
func cibXML(nodes []*Node, remote *Node) string {
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	names = append(names, remote.Name)
	return fmt.Sprintf(`<cib validate-with="pacemaker-3.7" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith-enabled" name="stonith-enabled" value="true"/>
        <nvpair id="opt-cluster-name" name="cluster-name" value="pcmkeys-lab"/>
        <nvpair id="opt-dc-deadtime" name="dc-deadtime" value="5s"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
      <primitive id="%[1]s" class="stonith" type="fence_lab">
        <instance_attributes id="%[1]s-ia">
          <nvpair id="%[1]s-hosts" name="pcmk_host_list" value="%[2]s"/>
          <nvpair id="%[1]s-check" name="pcmk_host_check" value="static-list"/>
        </instance_attributes>
        <operations>
          <op id="%[1]s-monitor" name="monitor" interval="60s"/>
        </operations>
      </primitive>
      <primitive id="%[3]s" class="ocf" provider="pacemaker" type="remote">
        <instance_attributes id="%[3]s-ia">
          <nvpair id="%[3]s-server" name="server" value="%[4]s"/>
        </instance_attributes>
        <operations>
          <op id="%[3]s-monitor" name="monitor" interval="60s" timeout="30s"/>
        </operations>
      </primitive>
      <primitive id="%[5]s" class="ocf" provider="pacemaker" type="Dummy">
        <operations>
          <op id="%[5]s-monitor" name="monitor" interval="10s" timeout="20s"/>
        </operations>
      </primitive>
      <primitive id="%[6]s" class="ocf" provider="pacemaker" type="Dummy">
        <operations>
          <op id="%[6]s-monitor" name="monitor" interval="10s" timeout="20s"/>
        </operations>
      </primitive>
    </resources>
    <constraints>
      <rsc_location id="loc-%[5]s" rsc="%[5]s" node="%[3]s" score="100"/>
      <rsc_location id="loc-%[6]s" rsc="%[6]s" node="%[7]s" score="100"/>
    </constraints>
    <rsc_defaults>
      <meta_attributes id="rsc-options">
        <nvpair id="rsc-options-resource-stickiness" name="resource-stickiness" value="1"/>
      </meta_attributes>
    </rsc_defaults>
  </configuration>
  <status/>
</cib>
`, FenceDevice, strings.Join(names, " "), remote.Name, remote.Addr, DummyRemote, DummyNode, nodes[0].Name)
}
