package rotate

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/policies"
)

// What doctor asks the running Pacemaker daemons of a node (checked
// against the real 3.0.2, rotate/doctor302_lab_test.go):
//
//   - pacemaker-based reads remote-tls-port and cib-credentials only at its
//     start. cib-credentials absent then → anonymous TLS until it restarts,
//     even after the file appears; bad owner or mode then → "Not starting
//     TLS listener", port closed, based keeps running. A file rotated later
//     is re-read on every handshake, so a file newer than based is normal:
//     doctor tells anonymous TLS apart by offering it one, keyless
//     (gnutls-cli, anonymous DH, TLS 1.2: based in PSK mode refuses it).
//   - pacemaker-remoted and the controller of 3.0.2+ read the authkey once:
//     a daemon that started before the file last changed holds the old key
//     ("restart pending"). The probe compares the file's change time with
//     the daemon's start. It never offers pacemaker-remoted a handshake of
//     its own: verified on a live 3.0.2 cluster, a second TLS client on
//     3121 — even one with the right key — makes remoted drop the cluster's
//     own connection when it leaves ("Cleaning up after remote client
//     pacemaker-remote-…"), and the remote node is fenced.
//
// The probe runs as one shell script per node through Host.Exec; it
// reads no key. Daemons are looked for in the probe's own network
// namespace (a host with several namespaces, such as a lab, runs one node
// per namespace), and every command the probe runs is bounded by timeout.
const nodeProbeScript = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export LC_ALL=C
cred=$1 authkey=$2 port=$3 peruser=$4
sd=; command -v setsid >/dev/null 2>&1 && sd="setsid -w"
gcli=; command -v gnutls-cli >/dev/null 2>&1 && gcli=gnutls-cli && echo gnutls
self=$(readlink /proc/self/ns/net)
echo "now $(date +%s.%N) $(cut -d' ' -f1 /proc/uptime) $(getconf CLK_TCK)"
for p in $(pgrep -x 'pacemaker-based|pacemaker-remot|pacemaker-contr' 2>/dev/null); do
	[ "$(readlink /proc/$p/ns/net 2>/dev/null)" = "$self" ] || continue
	c=$(cat /proc/$p/comm 2>/dev/null) || continue
	st=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f20) || continue
	v=$(timeout -s KILL 5 /proc/$p/exe --version </dev/null 2>/dev/null | head -n1)
	echo "daemon $c $p $st $v"
	if [ "$c" = pacemaker-based ]; then
		based=$p
		tr '\0' '\n' </proc/$p/environ | sed -n 's/^\(PCMK_\|HA_\|CIB_\)\(cert_file\|ca_file\|key_file\)=\(..*\)/x509 \2/p'
		tr '\0' '\n' </proc/$p/environ | sed -n 's/^CIB_pam_service=/pam /p'
		argv0=$(tr '\0' '\n' </proc/$p/cmdline | head -n1)
	fi
done
if [ "$peruser" = 1 ] && [ -z "$based" ]; then
	sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}CIB_pam_service=["'\'']\{0,1\}\([^"'\'' ]*\).*/pam \2/p' /etc/sysconfig/pacemaker /etc/default/pacemaker 2>/dev/null
fi
[ "$peruser" = 1 ] && grep -H -E '^[[:space:]]*(-?auth|@include)[[:space:]]' /etc/pam.d/* 2>/dev/null | sed 's/^/pamline /'
for f in "$cred" "$authkey"; do
	[ -e "$f" ] && echo "ctime $(stat -c %.9Z "$f" 2>/dev/null || stat -c %Z "$f") $f"
done
ss -Hltnp "( sport = :$port or sport = :3121 )" 2>/dev/null | sed 's/^/listen /'
cib=
if [ -n "$based" ]; then
	cib=$(dirname "$argv0")/../../sbin/cibadmin
	[ -x "$cib" ] || cib=$(command -v cibadmin)
	[ -n "$cib" ] && x=$(timeout -s KILL 5 "$cib" --query --xpath /cib --no-children 2>/dev/null | grep -o '<cib [^>]*>' | head -n1)
	[ -n "$x" ] && echo "cibport live $(echo "$x" | sed -n 's/.* remote-tls-port="\([^"]*\)".*/\1/p')"
fi
if [ -z "$x" ] && x=$(grep -o -m1 '<cib [^>]*>' /var/lib/pacemaker/cib/cib.xml 2>/dev/null); then
	echo "cibport file $(echo "$x" | sed -n 's/.* remote-tls-port="\([^"]*\)".*/\1/p')"
fi
addr() { a=$(ss -Hltn "( sport = :$1 )" 2>/dev/null | awk 'NR==1{print $4}'); a=${a%:*}; a=${a#[}; a=${a%]}
	case $a in ""|"*"|0.0.0.0|::|::ffff:0.0.0.0) echo 127.0.0.1 ;; *) echo "$a" ;; esac; }
verdict() { case $2 in *"Handshake was completed"*) echo "$1 yes" ;;
	*) echo "$1 no $(printf '%s\n' "$2" | grep -m1 '^\*\*\*' | tr -cd '[:print:]')" ;; esac; }
if [ -n "$gcli" ] && ss -Hltn "( sport = :$port )" 2>/dev/null | grep -q .; then
	verdict anon "$(timeout -s KILL 15 $sd gnutls-cli --priority 'NORMAL:-VERS-TLS1.3:-KX-ALL:+ANON-DH' -p "$port" "$(addr "$port")" </dev/null 2>&1)"
fi
exit 0`

// nodeProbe is what the probe saw on one node.
type nodeProbe struct {
	now     float64
	daemons map[string]probedDaemon // by /proc/PID/comm: pacemaker-based, pacemaker-remot(ed), pacemaker-contr(old)
	gnutls  bool
	x509    int                 // how many of cert_file, ca_file, key_file based has
	pam     string              // CIB_pam_service, "" when unset
	pamAuth map[string][]string // /etc/pam.d/NAME → its auth and @include lines
	ctime   map[string]float64  // path → change time; absent when missing
	listen  map[int]string      // port → ss line of its listener
	cibPort struct{ source, value string }
	anon    *probeVerdict // based's port answered anonymous TLS
}

type probedDaemon struct {
	name    string
	pid     int
	start   float64 // epoch seconds
	version string
}

type probeVerdict struct {
	yes    bool
	detail string // gnutls-cli's error when not
}

func (e *Env) probeNode(ctx context.Context, conn distribute.Host, h config.Host) (*nodeProbe, error) {
	out, err := conn.Exec(ctx, e.probeCommand(h))
	return probeAnswer(out, err)
}

// probeCommand is the root command that probes node or remote node h.
func (e *Env) probeCommand(h config.Host) string {
	perUser := "0"
	if h.Role == config.RoleNode && e.Config.Policy.IdentityMode == policies.PerUser {
		perUser = "1"
	}
	return shellCommand(nodeProbeScript, e.Config.Policy.Files[policies.CIBCredentials].Path,
		e.Config.Policy.Files[policies.Authkey].Path, strconv.Itoa(e.Config.CIB.Port), perUser)
}

// probeAnswer reads what probeCommand said (its output, or why it
// failed).
func probeAnswer(out string, err error) (*nodeProbe, error) {
	if err != nil {
		return nil, fmt.Errorf("%v %s", err, firstLine(out))
	}
	return parseNodeProbe(out), nil
}

// shellCommand runs script with args as its positional parameters.
func shellCommand(script string, args ...string) string {
	var b strings.Builder
	b.WriteString("sh -c " + shellQuote(script) + " sh")
	for _, a := range args {
		b.WriteString(" " + shellQuote(a))
	}
	return b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func parseNodeProbe(out string) *nodeProbe {
	p := &nodeProbe{daemons: map[string]probedDaemon{}, pamAuth: map[string][]string{},
		ctime: map[string]float64{}, listen: map[int]string{}}
	var wallNow, uptime, hz float64
	for _, line := range strings.Split(out, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		f := strings.Fields(rest)
		switch {
		case kind == "gnutls":
			p.gnutls = true
		case kind == "now" && len(f) == 3:
			wallNow, _ = strconv.ParseFloat(f[0], 64)
			uptime, _ = strconv.ParseFloat(f[1], 64)
			hz, _ = strconv.ParseFloat(f[2], 64)
			p.now = wallNow
		case kind == "daemon" && len(f) >= 3 && hz > 0:
			pid, _ := strconv.Atoi(f[1])
			ticks, _ := strconv.ParseFloat(f[2], 64)
			name := map[string]string{"pacemaker-remot": "pacemaker-remoted", "pacemaker-contr": "pacemaker-controld"}[f[0]]
			if name == "" {
				name = f[0]
			}
			p.daemons[name] = probedDaemon{name: name, pid: pid, start: wallNow - (uptime - ticks/hz), version: strings.Join(f[3:], " ")}
		case kind == "x509":
			p.x509++
		case kind == "pam" && len(f) == 1:
			p.pam = f[0]
		case kind == "pamline":
			file, l, _ := strings.Cut(strings.TrimPrefix(rest, "/etc/pam.d/"), ":")
			p.pamAuth[file] = append(p.pamAuth[file], l)
		case kind == "ctime" && len(f) >= 2:
			t, _ := strconv.ParseFloat(f[0], 64)
			_, path, _ := strings.Cut(rest, " ")
			p.ctime[path] = t
		case kind == "listen" && len(f) >= 4:
			if i := strings.LastIndexByte(f[3], ':'); i >= 0 {
				if port, err := strconv.Atoi(f[3][i+1:]); err == nil {
					p.listen[port] = rest
				}
			}
		case kind == "cibport" && len(f) >= 1:
			p.cibPort.source = f[0]
			if len(f) > 1 {
				p.cibPort.value = f[1]
			}
		case kind == "anon":
			p.anon = &probeVerdict{yes: len(f) > 0 && f[0] == "yes", detail: strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(rest, "yes"), "no"))}
		}
	}
	return p
}

func (p *nodeProbe) when(t float64) string {
	return time.Unix(int64(t), 0).UTC().Format("2006-01-02 15:04:05Z")
}

// pacemakerChecks are the checks that ask the running daemons of node or
// remote node h. version is what versionCommand found; cred is the state of
// cib-credentials (nil on a remote node).
func (e *Env) pacemakerChecks(ctx context.Context, conn distribute.Host, h config.Host, version string, credOK *bool, add func(Check)) {
	p, err := e.probeNode(ctx, conn, h)
	e.probeChecks(p, err, h, version, credOK, add)
}

// probeChecks are pacemakerChecks on a probe already run (p, or why it
// failed).
func (e *Env) probeChecks(p *nodeProbe, err error, h config.Host, version string, credOK *bool, add func(Check)) {
	if err != nil {
		add(Check{Name: "pacemaker daemons", OK: true, Detail: "unknown: the probe failed: " + err.Error()})
		return
	}
	based, basedRuns := p.daemons["pacemaker-based"]
	if h.Role == config.RoleNode {
		v := version
		if basedRuns && versionRE.MatchString(based.version) {
			v = based.version
		}
		e.checkCredVersion(p, v, add)
		portOK := e.checkCIBPort(p, add)
		if portOK {
			e.checkListener(p, credOK, add)
		}
		if e.Config.Policy.IdentityMode == policies.PerUser {
			checkPerUserPAM(p, add)
		}
	}
	checkAuthkeyInUse(p, e.Config.Policy.Files[policies.Authkey].Path, version, add)
}

func (e *Env) checkCredVersion(p *nodeProbe, v string, add func(Check)) {
	const name = "cib-credentials in effect"
	switch {
	case p.x509 >= 3:
		add(Check{Name: name, OK: true, Warning: true, Detail: "warning: has no effect here: pacemaker-based runs with X.509 certificates (cert_file, ca_file, key_file), which take precedence over cib-credentials; fix: unset them for pacemaker-based if the remote CIB should use TLS-PSK"})
	case !versionRE.MatchString(v):
		add(Check{Name: name, OK: true, Detail: "unknown: no Pacemaker version"})
	case !cachesAuthkey(v): // before 3.0.2
		add(Check{Name: name, OK: true, Warning: true, Detail: "warning: has no effect here: remote CIB TLS-PSK needs Pacemaker 3.0.2 or later, and this node runs " + versionRE.FindString(v) + " (its remote CIB, if on, is anonymous TLS and a PAM login only); fix: upgrade Pacemaker"})
	default:
		add(Check{Name: name, OK: true, Detail: versionRE.FindString(v) + " serves the remote CIB over TLS-PSK with it"})
	}
}

// checkCIBPort reports remote-tls-port; it returns false when the CIB
// names no port or another one (the listener check then has nothing to add).
func (e *Env) checkCIBPort(p *nodeProbe, add func(Check)) bool {
	const name = "remote-tls-port"
	want := strconv.Itoa(e.Config.CIB.Port)
	from := map[string]string{"live": "the CIB", "file": "the CIB on disk (/var/lib/pacemaker/cib/cib.xml)"}[p.cibPort.source]
	switch {
	case from == "":
		add(Check{Name: name, OK: true, Detail: "unknown: neither cibadmin nor the CIB on disk answered on this node"})
		return true
	case p.cibPort.value == "":
		add(Check{Name: name, OK: false, Detail: fmt.Sprintf(`not set in %s: remote administration is off; fix: cibadmin --modify --xml-text '<cib remote-tls-port="%s"/>' and restart pacemaker-based (it reads the port only at start)`, from, want)})
		return false
	case p.cibPort.value != want:
		add(Check{Name: name, OK: false, Detail: fmt.Sprintf(`config says %s, the CIB says %s (%s); fix: set cib.port to %s, or cibadmin --modify --xml-text '<cib remote-tls-port="%s"/>' and restart pacemaker-based`, want, p.cibPort.value, from, p.cibPort.value, want)})
		return false
	}
	add(Check{Name: name, OK: true, Detail: want + ", as the config's cib.port (" + from + ")"})
	return true
}

func (e *Env) checkListener(p *nodeProbe, credOK *bool, add func(Check)) {
	const name = "remote CIB listener"
	port := e.Config.CIB.Port
	based, ok := p.daemons["pacemaker-based"]
	if !ok {
		add(Check{Name: name, OK: true, Detail: "pacemaker-based is not running here"})
		return
	}
	credPath := e.Config.Policy.Files[policies.CIBCredentials].Path
	ctime, credExists := p.ctime[credPath]
	since := fmt.Sprintf("pacemaker-based (pid %d) started %s", based.pid, p.when(based.start))
	restart := "restart pacemaker-based (the cluster keeps running; its remote-CIB sessions end)"
	listener := p.listen[port]
	switch {
	case listener == "" && p.now-based.start < listenerGrace.Seconds():
		add(Check{Name: name, OK: true, Detail: fmt.Sprintf("unknown: %s, %.0f s ago; its listener takes a few seconds (DH parameters): rerun doctor", since, p.now-based.start)})
	case listener == "" && credExists && credOK != nil && !*credOK:
		add(Check{Name: name, OK: false, Detail: fmt.Sprintf("no TLS listener on %d: based refused cib-credentials at its start (owner/mode); fix the file (pcmkeys push) and %s", port, restart)})
	case listener == "":
		add(Check{Name: name, OK: false, Detail: fmt.Sprintf("no TLS listener on %d although %s: it reads remote-tls-port and cib-credentials' owner and mode only at start, and one of them was wrong then: restart pending; %s", port, since, restart)})
	case p.x509 >= 3:
		add(Check{Name: name, OK: true, Detail: fmt.Sprintf("listening on %d (X.509)", port)})
	case p.anon != nil && p.anon.yes && credExists:
		add(Check{Name: name, OK: false, Detail: fmt.Sprintf("restart pending: %s without cib-credentials and serves anonymous TLS on %d until it restarts (it reads the file only at start): no admin key is checked; %s", since, port, restart)})
	case p.anon != nil && p.anon.yes:
		add(Check{Name: name, OK: false, Detail: fmt.Sprintf("serves anonymous TLS on %d: cib-credentials is missing; fix: pcmkeys push, then %s", port, restart)})
	case p.anon != nil:
		add(Check{Name: name, OK: true, Detail: fmt.Sprintf("listening on %d with TLS-PSK (anonymous TLS refused)", port)})
	case credExists && ctime > based.start:
		add(Check{Name: name, OK: true, Warning: true, Detail: fmt.Sprintf("warning: listening on %d, but cib-credentials changed at %s, after %s: if it was absent then, based serves anonymous TLS until restarted; install gnutls-cli (gnutls-bin) on the node and doctor will tell", port, p.when(ctime), since)})
	default:
		add(Check{Name: name, OK: true, Detail: fmt.Sprintf("listening on %d; cib-credentials is older than pacemaker-based", port)})
	}
}

// listenerGrace is how long based may take to open its listener: 1.5–4 s
// on 3.0.2 (DH parameters).
const listenerGrace = 6 * time.Second

// checkAuthkeyInUse asks whether the daemon that uses the authkey on this
// node holds the file's key.
//
// version is the node's Pacemaker version from elsewhere (pacemakerd
// --version), for a daemon that does not say its own (Debian's 2.1.5
// controller prints nothing).
func checkAuthkeyInUse(p *nodeProbe, path, version string, add func(Check)) {
	const name = "authkey in use"
	d, ok := p.daemons["pacemaker-remoted"]
	if !ok {
		d, ok = p.daemons["pacemaker-controld"]
	}
	if !ok {
		add(Check{Name: name, OK: true, Detail: "no pacemaker-remoted or pacemaker-controld runs here"})
		return
	}
	ctime, exists := p.ctime[path]
	if !versionRE.MatchString(d.version) {
		d.version = version
	}
	who := fmt.Sprintf("%s (%s, pid %d, started %s)", d.name, versionRE.FindString(d.version), d.pid, p.when(d.start))
	switch {
	case !exists:
		add(Check{Name: name, OK: false, Detail: who + " runs, but " + path + " is missing"})
	case cachesAuthkey(d.version) && ctime > d.start:
		add(Check{Name: name, OK: false, Detail: fmt.Sprintf("restart pending: the authkey changed %s, after %s started, and this version reads it only at start: it still holds the old key; restart it (rotate --authkey --restart does it safely)", p.when(ctime), who)})
	case !cachesAuthkey(d.version) && ctime > d.start && p.now-ctime < 90:
		add(Check{Name: name, OK: true, Detail: fmt.Sprintf("%s re-reads the authkey within 60 s; it changed %.0f s ago: rerun doctor in a minute", who, p.now-ctime)})
	default:
		add(Check{Name: name, OK: true, Detail: fmt.Sprintf("%s holds the file's key (it started after the file last changed, or re-reads it)", who)})
	}
}
