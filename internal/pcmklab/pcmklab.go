// Package pcmklab runs the real Pacemaker 3.0.2 daemons and clients inside
// lab hosts (internal/sshlab, started with OwnNetwork), so tests check
// pcmkeys's files against the software that reads them: the remote CIB
// over TLS-PSK served by pacemaker-based, its clients cibadmin and crm_mon,
// and the authkey as pacemaker-remoted takes it.
//
// Debian 12 ships only Pacemaker 2.1.5. scripts/peers.sh builds 3.0.2 from
// ../shared/peers/pacemaker-3.0.2.tar.gz once per machine into
// $XDG_CACHE_HOME/pcmkeys/pacemaker-3.0.2-<16 hex of its SHA-256>/ (6–10
// minutes on 2 cores; binaries carry RUNPATH to its lib); [Dir] finds it
// there and [SkipReason] says "run scripts/peers.sh" while it is absent.
//
// A test starts lab hosts that can run the peer, then a daemon on one:
//
//	lab := pcmklab.StartLab(t, 1, sshlab.Options{}) // own network, the peer visible
//	node := lab.Hosts[0]
//	// … pcmkeys writes /etc/pacemaker/cib-credentials and alice's files …
//	pcmklab.SetPassword(t, node, "hacluster", "secret")
//	based := pcmklab.StartBased(t, node, 7301)
//	out, err := pcmklab.Cibadmin(t, node, "alice", "/home/alice/.pcmkeys/lab.env")
//
// # Facts this harness rests on (checked on 3.0.2 here)
//
//   - Each daemon needs its own network namespace: libqb IPC uses abstract
//     sockets, and pacemaker-based and pacemaker-remoted in one namespace
//     collide ("cib_ro … Address already in use"). So one daemon per lab
//     host, with the host's private /run, /dev/shm and (mounted here)
//     /var/lib/pacemaker and /var/log/pacemaker. A client (cibadmin) must
//     share the daemon's network namespace: here it runs on the same host
//     and reaches 127.0.0.1.
//   - `pacemaker-based -s` (stand-alone) runs without corosync, drops to
//     hacluster:haclient itself, and serves the remote CIB when its CIB
//     (/var/lib/pacemaker/cib/cib.xml, owned by hacluster) has
//     remote-tls-port="PORT" on the <cib> element. It starts from
//     `cibadmin --empty` (which sets validate-with; without it every
//     request is rejected); no cib.xml.sig is needed. remote-tls-port is
//     read only at start. The TLS listener is up 1.5–4 s after start (DH
//     parameters).
//   - /etc/pacemaker/cib-credentials is checked only when based starts: a
//     bad owner or mode → "Not starting TLS listener" (based keeps running,
//     port closed); absent → anonymous TLS until based restarts, even after
//     the file appears. After start GnuTLS re-reads the file on every
//     handshake: a rotated file works on the next connection; established
//     sessions are not dropped when it changes. `ss -K '( sport = :PORT )'`
//     on the node closes them.
//   - After the handshake based runs a PAM login (service CIB_pam_service,
//     default "login") for CIB_user with CIB_passwd and requires membership
//     in haclient (primary or listed). Stock pam_unix run as hacluster can
//     check only hacluster's own password, so the identity is hacluster and
//     the lab sets its password in the host's private /etc/shadow
//     ([SetPassword]). Any failure (wrong key, unknown identity, wrong
//     password, plaintext) gives the client the same "Protocol error" (rc
//     76); only the server log ([Based.Log]) tells them apart. A client key
//     file not owned by the client's euid or with group/other bits:
//     "Permission denied" (rc 4).
//   - pacemaker-remoted 3.0.2 reads /etc/pacemaker/authkey once and keeps it
//     for the life of the process; after a restart only the new key works.
//     A key is accepted when gnutls-cli with PSK identity "lrmd" and the
//     key's bytes in hex completes the handshake on port 3121.
package pcmklab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// Version is the Pacemaker version of the peer.
const Version = "3.0.2"

var dirOnce struct {
	sync.Once
	dir, reason string
}

// Dir is the built peer's prefix (its sbin, libexec/pacemaker, lib), or ""
// when it is not built; then [SkipReason] says why.
func Dir() string {
	dirOnce.Do(func() { dirOnce.dir, dirOnce.reason = findPeer() })
	return dirOnce.dir
}

// findPeer computes scripts/peers.sh's cache key: the first 16 hex digits
// of the tarball's SHA-256.
func findPeer() (string, string) {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		cache = filepath.Join(os.Getenv("HOME"), ".cache")
	}
	peers := os.Getenv("PCMKEYS_PEERS")
	if peers == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err.Error()
		}
		peers = filepath.Join(root, "..", "shared", "peers")
	}
	tarball := filepath.Join(peers, "pacemaker-3.0.2.tar.gz")
	f, err := os.Open(tarball)
	if err != nil {
		return "", fmt.Sprintf("no Pacemaker 3.0.2 source (%v): the real-Pacemaker tests need it", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err.Error()
	}
	dir := filepath.Join(cache, "pcmkeys", "pacemaker-3.0.2-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, ".pcmkeys-complete")); err != nil {
		return "", "the Pacemaker 3.0.2 test peer is not built in " + dir + ": run scripts/peers.sh (6-10 minutes, once per machine)"
	}
	return dir, ""
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 20; i++ {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		dir = filepath.Dir(dir)
	}
	return "", fmt.Errorf("no go.mod above the working directory: set PCMKEYS_PEERS")
}

// SkipReason says why the real Pacemaker 3.0.2 cannot run here, or "".
func SkipReason() string {
	if r := sshlab.SkipReasonOwnNetwork(); r != "" {
		return r
	}
	for _, tool := range []string{"setpriv", "ss", "gnutls-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not installed (.ci/run installs util-linux, iproute2 and gnutls-bin)"
		}
	}
	if Dir() == "" {
		return dirOnce.reason
	}
	return ""
}

// Require skips the test when [SkipReason] says so.
func Require(t testing.TB) {
	t.Helper()
	if r := SkipReason(); r != "" {
		t.Skip(r)
	}
}

// bin is the path of one of the peer's programs.
func bin(name string) string {
	if name == "pacemaker-based" {
		return filepath.Join(Dir(), "libexec", "pacemaker", name)
	}
	return filepath.Join(Dir(), "sbin", name)
}

// LabOptions returns opts for lab hosts that can run the peer: each with
// its own network, and the peer's directory (in the machine's ~/.cache,
// which a host's private /root would hide) shared read-only.
func LabOptions(opts sshlab.Options) sshlab.Options {
	opts.OwnNetwork = true
	if d := Dir(); d != "" {
		opts.Share = append(append([]string(nil), opts.Share...), d)
	}
	return opts
}

// StartLab skips the test unless the peer can run, then starts n lab hosts
// with [LabOptions](opts).
func StartLab(t testing.TB, n int, opts sshlab.Options) *sshlab.Lab {
	t.Helper()
	Require(t)
	return sshlab.Start(t, n, LabOptions(opts))
}

var prepared sync.Map // *sshlab.Host → pid of its namespace holder when prepared

// prepare gives host the private directories the daemons write (once per
// boot of the host): /var/lib/pacemaker and /var/log/pacemaker on tmpfs,
// owned as Debian's packages own them, and /run/pcmklab for the lab's own
// files.
func prepare(t testing.TB, host *sshlab.Host) {
	t.Helper()
	if !host.OwnNetwork {
		t.Fatalf("pcmklab needs a host with its own network: start the lab with pcmklab.StartLab or pcmklab.LabOptions (%s)", host.Name)
	}
	pid := host.PID()
	if v, ok := prepared.Load(host); ok && v.(int) == pid {
		return
	}
	out, err := host.Exec(t.Context(), `set -e
mountpoint -q /var/lib/pacemaker || mount -t tmpfs -o mode=0750,size=32m tmpfs /var/lib/pacemaker
mountpoint -q /var/log/pacemaker || mount -t tmpfs -o mode=0770,size=32m tmpfs /var/log/pacemaker
for d in cib pengine blackbox cores; do mkdir -p -m 0750 /var/lib/pacemaker/$d; done
chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker
mkdir -p -m 0755 /run/pcmklab
[ -x "$1" ] || { echo "the Pacemaker $2 peer is not visible on this host: start the lab with pcmklab.StartLab or pcmklab.LabOptions"; exit 1; }`, bin("cibadmin"), Version)
	if err != nil {
		t.Fatalf("prepare %s for Pacemaker: %v: %s", host.Name, err, out)
	}
	prepared.Store(host, pid)
}

// Bin is the path of one of the peer's programs (cibadmin, crm_mon, …) as
// a lab host sees it: for configs that name the real client, such as
// pcmkeys's cib.verify_command.
func Bin(name string) string { return bin(name) }
