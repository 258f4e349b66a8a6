package distribute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
	"github.com/pcmkeys/pcmkeys/internal/quickack"
)

// SSHConfig is how pcmkeys logs in to hosts.
//
// What a host is reached at and as comes, field by field, from the first
// of: what pcmkeys's own config wrote for it ([SSHConfig].Hosts, the
// global Jump), the OpenSSH client config (OpenSSHConfig), and the
// defaults (the endpoint given to [SSHDialer.Open], User).
type SSHConfig struct {
	// User logs in to a host for which neither Hosts nor the OpenSSH
	// config names a user.
	User string
	// KnownHosts is the known_hosts file host keys are checked against,
	// and the one an unknown key's message says to append to. There is
	// no way to skip the check.
	KnownHosts string
	// ExtraKnownHosts are read too (~/.ssh/known_hosts,
	// /etc/ssh/ssh_known_hosts): a key is known if any file holds it. A
	// missing file, KnownHosts included, is skipped.
	ExtraKnownHosts []string
	// Sudo runs every command with sudo -n (passwordless sudo).
	Sudo bool
	// IdentityFiles are private keys to offer, after the agent's
	// (SSH_AUTH_SOCK). Keys with a passphrase must be in the agent.
	IdentityFiles []string
	// DefaultIdentityFiles are offered after IdentityFiles if they are
	// there (~/.ssh/id_ed25519, id_ecdsa, id_rsa): a missing one, or one
	// with a passphrase, is skipped with a debug log, never prompted for.
	DefaultIdentityFiles []string
	// ConnectTimeout bounds each connection, jump host included.
	ConnectTimeout time.Duration
	// CommandTimeout bounds each remote operation (stage, commit, …);
	// zero means only the caller's context does. It holds whatever the
	// host does: see [SSHHost] and [ErrTimeout].
	CommandTimeout time.Duration
	// Jump, if set, is a bastion every connection goes through; it wins
	// over the OpenSSH config's ProxyJump.
	Jump *SSHEndpoint
	// OpenSSHConfig names an OpenSSH client config file (ssh_config(5),
	// ~/.ssh/config), read once by [NewSSHDialer]; a missing file is an
	// empty one, and "" reads none. Its Host blocks, matched against a
	// host's name, give HostName, Port, User, IdentityFile, ProxyJump
	// (one hop) and UserKnownHostsFile. Host keys are checked whatever it
	// says (StrictHostKeyChecking is ignored).
	OpenSSHConfig string
	// Hosts holds, by host name, what pcmkeys's own config wrote for a
	// host; a field it sets wins over the OpenSSH config.
	Hosts map[string]SSHHostConfig
	// Log gets debug lines on skipped keys and ignored settings;
	// slog.Default() if nil.
	Log *slog.Logger
}

// SSHHostConfig is what pcmkeys's config says of one host's login; a zero
// field says nothing.
type SSHHostConfig struct {
	Address string
	Port    int
	User    string
}

// SSHEndpoint is an address to reach over SSH.
type SSHEndpoint struct {
	Name    string
	Address string
	Port    int
}

func (e SSHEndpoint) hostport() string { return net.JoinHostPort(e.Address, strconv.Itoa(e.Port)) }

// Errors for host keys.
var (
	ErrHostKeyUnknown = errors.New("host key is not in known_hosts")
	ErrHostKeyChanged = errors.New("HOST KEY HAS CHANGED")
	ErrUnreachable    = errors.New("host unreachable")
)

// sshDialer holds what every connection of one run shares: the agent's
// and the configured keys (one agent connection), the OpenSSH config, and
// the keys and known_hosts databases read so far.
type sshDialer struct {
	cfg     SSHConfig
	log     *slog.Logger
	signers []ssh.Signer
	agent   net.Conn
	openssh *ssh_config.Config // nil: none

	mu       sync.Mutex
	keys     map[string]ssh.Signer          // a host's IdentityFile, by path (nil: skipped)
	hostKeys map[string]ssh.HostKeyCallback // by the list of files read
}

// newSSHDialer reads the OpenSSH config and the identity files and
// connects to the agent, once for all hosts.
func newSSHDialer(cfg SSHConfig) (*sshDialer, error) {
	d := &sshDialer{cfg: cfg, log: cfg.Log, keys: map[string]ssh.Signer{}, hostKeys: map[string]ssh.HostKeyCallback{}}
	if d.log == nil {
		d.log = slog.Default()
	}
	if cfg.KnownHosts == "" && len(cfg.ExtraKnownHosts) == 0 {
		return nil, errors.New("ssh: a known_hosts file is required; host keys are always verified")
	}
	if err := d.readOpenSSH(); err != nil {
		return nil, err
	}
	if err := d.loadSigners(); err != nil {
		d.close()
		return nil, err
	}
	if len(d.signers) == 0 && d.openssh == nil {
		d.close()
		return nil, errNoKeys("")
	}
	// Known hosts files that cannot be read fail now, not per host.
	if _, _, err := d.hostKeyDB(nil); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func errNoKeys(host string) error {
	at := ""
	if host != "" {
		at = " for host " + host
	}
	return fmt.Errorf("ssh: no keys%s: start ssh-agent with your key (SSH_AUTH_SOCK), put it in ~/.ssh/id_ed25519, or set ssh.identity_files", at)
}

func (d *sshDialer) close() {
	if d.agent != nil {
		d.agent.Close()
	}
}

// clientConfig returns the SSH client config for one route, offering
// only the host key algorithms known_hosts has for it, so the server
// cannot pick a key type that would then look "unknown".
func (d *sshDialer) clientConfig(r *route) (*ssh.ClientConfig, error) {
	signers := d.routeSigners(r)
	if len(signers) == 0 {
		return nil, errNoKeys(r.ep.Name)
	}
	db, files, err := d.hostKeyDB(r.knownHosts)
	if err != nil {
		return nil, err
	}
	cc := &ssh.ClientConfig{
		User:            r.user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback: checkHostKey(r, db, files, d.trustFile(r)),
		Timeout:         d.cfg.ConnectTimeout,
	}
	if algos := knownAlgorithms(db, r.ep); len(algos) > 0 {
		cc.HostKeyAlgorithms = algos
	}
	return cc, nil
}

// knownAlgorithms asks the known_hosts callback, with a key that cannot
// match, which keys it knows for the endpoint.
func knownAlgorithms(db ssh.HostKeyCallback, e SSHEndpoint) []string {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: e.Port}
	err := db(e.hostport(), addr, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// probeKey is a public key that matches nothing.
type probeKey struct{}

func (probeKey) Type() string                        { return "pcmkeys-probe" }
func (probeKey) Marshal() []byte                     { return []byte("pcmkeys-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe") }

// checkHostKey verifies the server's key against the known_hosts files and
// turns a mismatch into an error that names the host and the key's
// fingerprint and says how to trust it (appending to trust).
func checkHostKey(r *route, db ssh.HostKeyCallback, files []string, trust string) ssh.HostKeyCallback {
	e := r.ep
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := db(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return fmt.Errorf("host %s (%s): its key %s is marked revoked in %s", e.Name, e.hostport(), ssh.FingerprintSHA256(key), re.Revoked.Filename)
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return fmt.Errorf("host %s (%s): %w (read: %s): it offered %s %s; if that is its key, trust it with: ssh-keyscan -p %d %s >> %s",
				e.Name, e.hostport(), ErrHostKeyUnknown, filesRead(files), key.Type(), ssh.FingerprintSHA256(key), e.Port, e.Address, trust)
		case errors.As(err, &ke):
			return fmt.Errorf("host %s (%s): %w: it offered %s %s, but %s line %d holds another; refusing (someone may be intercepting, or the host was reinstalled: check, then fix %s)",
				e.Name, e.hostport(), ErrHostKeyChanged, key.Type(), ssh.FingerprintSHA256(key), ke.Want[0].Filename, ke.Want[0].Line, ke.Want[0].Filename)
		}
		return fmt.Errorf("host %s: %w", e.Name, err)
	}
}

// dial connects to e, through the jump host if there is one.
func (d *sshDialer) dial(ctx context.Context, e SSHEndpoint) (*ssh.Client, error) {
	r, err := d.resolve(e)
	if err != nil {
		return nil, err
	}
	if d.cfg.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.cfg.ConnectTimeout)
		defer cancel()
	}
	if r.jump != nil {
		jump, jerr := d.handshake(ctx, r.jump)
		if jerr != nil {
			return nil, fmt.Errorf("jump host: %w", jerr)
		}
		conn, err := jump.DialContext(ctx, "tcp", r.ep.hostport())
		if err != nil {
			jump.Close()
			return nil, fmt.Errorf("host %s (%s) through jump host %s: %w: %s", e.Name, r.ep.hostport(), r.jump.ep.Name, ErrUnreachable, escape.String(err.Error()))
		}
		c, err := d.handshakeConn(ctx, r, conn)
		if err != nil {
			jump.Close()
			return nil, err
		}
		go func() { c.Wait(); jump.Close() }()
		return c, nil
	}
	return d.handshake(ctx, r)
}

func (d *sshDialer) handshake(ctx context.Context, r *route) (*ssh.Client, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, "tcp", r.ep.hostport())
	if err != nil {
		return nil, fmt.Errorf("host %s (%s): %w: %v", r.ep.Name, r.ep.hostport(), ErrUnreachable, err)
	}
	return d.handshakeConn(ctx, r, quickack.Wrap(conn))
}

// handshakeConn runs the SSH handshake on conn, bounded by ctx.
func (d *sshDialer) handshakeConn(ctx context.Context, r *route, conn net.Conn) (*ssh.Client, error) {
	cc, err := d.clientConfig(r)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, r.ep.hostport(), cc)
	if err != nil {
		conn.Close()
		if errors.Is(err, ErrHostKeyUnknown) || errors.Is(err, ErrHostKeyChanged) {
			return nil, err
		}
		// The server's words (a disconnect message) are escaped.
		return nil, fmt.Errorf("host %s (%s): ssh login as %s%s: %w", r.ep.Name, r.ep.hostport(), r.user, r.userFrom, escape.Err(err))
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}
