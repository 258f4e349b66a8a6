package rotate

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/policies"
)

// A staged workflow (rotate; revoke in shared mode) keeps every node's
// connection open from staging to the commit, whatever --parallel says, so
// it needs about one file descriptor per node at once. Go raises the soft
// RLIMIT_NOFILE to the hard limit at start (package syscall's init; Go
// 1.26 to one below it), so what binds is the hard limit; checkFDs refuses, before the lock is taken
// and before any host is contacted, a run the limit cannot hold, instead of
// failing half-way with "too many open files".

// What one staged host holds until the commit, and what the run opens
// besides its hosts.
const (
	// fdsPerSSHHost: its TCP socket. Through a jump host (ssh.jump or a
	// ProxyJump) it is the socket to the jump host: the connection to the
	// node is a channel inside it, not a descriptor.
	fdsPerSSHHost = 1
	// fdsPerLocalFile: a file staged on a local host keeps its directory,
	// an os.Root on it and the pending temporary file open.
	fdsPerLocalFile = 3
	// fdsPerDial: a connection being opened may hold one more descriptor
	// for a moment (the resolver's second query, Happy Eyeballs' second
	// attempt); at most --parallel are being opened at once.
	fdsPerDial = 1
	// fdsLater are opened by the run after the check, besides its hosts:
	// the lock (a flock'd file, or Vault's HTTP connection, renewed while
	// the store is written), the store's own files (a file store writes
	// a temporary file and syncs its directory; Vault may open a second
	// connection), the audit trail and its syslog socket, the SSH agent,
	// the known_hosts and identity files read while connecting, and a
	// live rotation's one connection to a node for crm_mon and maintenance
	// mode. The run's descriptors at rest, stdio included, are counted
	// when the check runs (openFDs).
	fdsLater = 16
	// fdsAtRest stands in for openFDs where /proc/self/fd cannot be read.
	// Measured at the check with a file store: 7 of the run's own (stdin,
	// stdout, stderr, the runtime's epoll and its eventfd, the two cgroup
	// files Go reads the CPU quota from), plus what the parent left open
	// (2 more under the shell it was measured from).
	fdsAtRest = 10
)

// fdNeed is how many file descriptors a staged run needs at most at once.
type fdNeed struct {
	sshHosts   int // SSH hosts staged on, each holding its connection
	localFiles int // files staged on local hosts, each held open
	dialing    int // connections opened at once (--parallel, at most the hosts)
	open       int // open now, at the check
}

func (n fdNeed) total() int {
	return n.open + fdsLater + n.sshHosts*fdsPerSSHHost + n.localFiles*fdsPerLocalFile + n.dialing*fdsPerDial
}

// fits reports whether a soft RLIMIT_NOFILE of soft holds n.
func (n fdNeed) fits(soft uint64) bool { return uint64(n.total()) <= soft }

// stagedNeed counts what staging kinds of files on hosts holds: every host
// whose role holds one of kinds is staged on, all at once; parallel (< 1:
// distribute.DefaultParallel) of them are opened at a time.
func stagedNeed(hosts []config.Host, kinds []policies.FileKind, parallel, open int) fdNeed {
	if parallel < 1 {
		parallel = distribute.DefaultParallel
	}
	n := fdNeed{open: open}
	staged := 0
	for _, h := range hosts {
		files := 0
		for _, k := range kinds {
			if h.Role.Holds(k) {
				files++
			}
		}
		switch {
		case files == 0:
			continue
		case h.Local:
			n.localFiles += files
		default:
			n.sshHosts++
		}
		staged++
	}
	n.dialing = min(parallel, staged)
	return n
}

// openFiles returns the soft RLIMIT_NOFILE (after Go's raise at start:
// the hard limit, or one less) and the hard one.
func openFiles() (soft, hard uint64, err error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	return lim.Cur, lim.Max, nil
}

// openFDs counts this process's open file descriptors below limit (a
// descriptor numbered at or above it, inherited from a parent with a higher
// limit, takes no room under it), or fdsAtRest if it cannot.
func openFDs(limit uint64) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fdsAtRest
	}
	n := -1 // the directory being read
	for _, e := range ents {
		if fd, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && fd < limit {
			n++
		}
	}
	return max(n, 0)
}

// fdLimitError refuses a run of action that needs more descriptors than
// the soft limit.
func fdLimitError(action string, n fdNeed, soft, hard uint64) error {
	need := n.total()
	held := fmt.Sprintf("to each of its %d SSH nodes", n.sshHosts)
	if n.localFiles > 0 {
		held += fmt.Sprintf(" and %d files on local nodes", n.localFiles)
	}
	return badInput("%s needs up to %d open files at once and the limit is %d (RLIMIT_NOFILE; hard limit %d): "+
		"it keeps a connection %s open from staging to the commit, whatever --parallel says "+
		"(besides: up to %d being opened, %d open now, %d for the store, the lock and the audit); nothing was changed. "+
		"Raise the limit to %d or more: ulimit -n %d in the shell that runs pcmkeys, "+
		"or LimitNOFILE=%d in its systemd unit (systemctl edit pcmkeys-rotate.service)",
		action, need, soft, hard, held, n.dialing, n.open, fdsLater, need, need, need)
}

// checkFDs refuses (a bad-input error, exit 2) a staged run that
// RLIMIT_NOFILE cannot hold: action stages kinds of files on every host of
// the config whose role holds one of them.
func (e *Env) checkFDs(action string, kinds []policies.FileKind) error {
	soft, hard, err := openFiles()
	if err != nil {
		return nil // no limit to read: nothing to respect
	}
	n := stagedNeed(e.Config.Hosts, kinds, e.Parallel, openFDs(soft))
	if n.fits(soft) {
		e.log().Debug("open files", "action", action, "need", n.total(), "limit", soft, "open", n.open)
		return nil
	}
	return fdLimitError(action, n, soft, hard)
}

// rotationKinds are the kinds of files a rotation of req may stage, as
// selectRotation picks its keys: with nothing named, the CIB keys, and
// the authkey too when only the due ones are rotated.
func rotationKinds(req Request) []policies.FileKind {
	none := !req.CIB && !req.Authkey && len(req.Users) == 0
	var kinds []policies.FileKind
	if req.CIB || none || len(req.Users) > 0 {
		kinds = append(kinds, policies.CIBCredentials)
	}
	if req.Authkey || (none && req.Due) {
		kinds = append(kinds, policies.Authkey)
	}
	return kinds
}
