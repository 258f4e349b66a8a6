package distribute

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
)

// SSHConfig is how pcmkeys logs in to hosts.
type SSHConfig struct {
	User string
	// KnownHosts is the known_hosts file host keys are checked against.
	// There is no way to skip the check.
	KnownHosts string
	// Sudo runs every command with sudo -n (passwordless sudo).
	Sudo bool
	// IdentityFiles are private keys to offer, after the agent's
	// (SSH_AUTH_SOCK). Keys with a passphrase must be in the agent.
	IdentityFiles []string
	// ConnectTimeout bounds each connection, jump host included.
	ConnectTimeout time.Duration
	// CommandTimeout bounds each remote operation (stage, commit, …);
	// zero means only the caller's context does. It holds whatever the
	// host does: see [SSHHost] and [ErrTimeout].
	CommandTimeout time.Duration
	// Jump, if set, is a bastion every connection goes through.
	Jump *SSHEndpoint
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

// sshDialer holds what every connection of one run shares: the auth
// methods (one agent connection) and the known_hosts database.
type sshDialer struct {
	cfg      SSHConfig
	auth     []ssh.AuthMethod
	hostKeys ssh.HostKeyCallback
	agent    net.Conn
}

// NewSSHDialer reads known_hosts and the identity files and connects to the
// agent, once for all hosts.
func newSSHDialer(cfg SSHConfig) (*sshDialer, error) {
	d := &sshDialer{cfg: cfg}
	if cfg.KnownHosts == "" {
		return nil, errors.New("ssh: a known_hosts file is required; host keys are always verified")
	}
	cb, err := knownhosts.New(cfg.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("ssh: known_hosts %s: %w", cfg.KnownHosts, err)
	}
	d.hostKeys = cb
	var signers []ssh.Signer
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			d.agent = conn
			if s, err := agent.NewClient(conn).Signers(); err == nil {
				signers = append(signers, s...)
			}
		}
	}
	for _, f := range cfg.IdentityFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("ssh: identity file: %w", err)
		}
		s, err := ssh.ParsePrivateKey(b)
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("ssh: identity file %s has a passphrase: add it to ssh-agent instead", f)
		}
		if err != nil {
			return nil, fmt.Errorf("ssh: identity file %s: %w", f, err)
		}
		signers = append(signers, s)
	}
	if len(signers) == 0 {
		return nil, errors.New("ssh: no keys: start ssh-agent with your key (SSH_AUTH_SOCK) or set ssh.identity_files")
	}
	d.auth = []ssh.AuthMethod{ssh.PublicKeys(signers...)}
	return d, nil
}

func (d *sshDialer) close() {
	if d.agent != nil {
		d.agent.Close()
	}
}

// clientConfig returns the SSH client config for one endpoint, offering
// only the host key algorithms known_hosts has for it, so the server
// cannot pick a key type that would then look "unknown".
func (d *sshDialer) clientConfig(e SSHEndpoint) *ssh.ClientConfig {
	cc := &ssh.ClientConfig{
		User:            d.cfg.User,
		Auth:            d.auth,
		HostKeyCallback: d.checkHostKey(e),
		Timeout:         d.cfg.ConnectTimeout,
	}
	if algos := d.knownAlgorithms(e); len(algos) > 0 {
		cc.HostKeyAlgorithms = algos
	}
	return cc
}

// knownAlgorithms asks the known_hosts callback, with a key that cannot
// match, which keys it knows for the endpoint.
func (d *sshDialer) knownAlgorithms(e SSHEndpoint) []string {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: e.Port}
	err := d.hostKeys(e.hostport(), addr, probeKey{})
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

// checkHostKey verifies the server's key against known_hosts and turns a
// mismatch into an error that names the host and the key's fingerprint and
// says how to trust it.
func (d *sshDialer) checkHostKey(e SSHEndpoint) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := d.hostKeys(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return fmt.Errorf("host %s (%s): its key %s is marked revoked in %s", e.Name, e.hostport(), ssh.FingerprintSHA256(key), d.cfg.KnownHosts)
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return fmt.Errorf("host %s (%s): %w: it offered %s %s; if that is its key, trust it with: ssh-keyscan -p %d %s >> %s",
				e.Name, e.hostport(), ErrHostKeyUnknown, key.Type(), ssh.FingerprintSHA256(key), e.Port, e.Address, d.cfg.KnownHosts)
		case errors.As(err, &ke):
			return fmt.Errorf("host %s (%s): %w: it offered %s %s, but %s line %d holds another; refusing (someone may be intercepting, or the host was reinstalled: check, then fix %s)",
				e.Name, e.hostport(), ErrHostKeyChanged, key.Type(), ssh.FingerprintSHA256(key), ke.Want[0].Filename, ke.Want[0].Line, d.cfg.KnownHosts)
		}
		return fmt.Errorf("host %s: %w", e.Name, err)
	}
}

// dial connects to e, through the jump host if there is one.
func (d *sshDialer) dial(ctx context.Context, e SSHEndpoint) (*ssh.Client, error) {
	if d.cfg.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.cfg.ConnectTimeout)
		defer cancel()
	}
	if d.cfg.Jump != nil {
		jump, jerr := d.handshake(ctx, *d.cfg.Jump)
		if jerr != nil {
			return nil, fmt.Errorf("jump host: %w", jerr)
		}
		conn, err := jump.DialContext(ctx, "tcp", e.hostport())
		if err != nil {
			jump.Close()
			return nil, fmt.Errorf("host %s (%s) through jump host %s: %w: %s", e.Name, e.hostport(), d.cfg.Jump.Name, ErrUnreachable, escape.String(err.Error()))
		}
		c, err := d.handshakeConn(ctx, e, conn)
		if err != nil {
			jump.Close()
			return nil, err
		}
		go func() { c.Wait(); jump.Close() }()
		return c, nil
	}
	return d.handshake(ctx, e)
}

func (d *sshDialer) handshake(ctx context.Context, e SSHEndpoint) (*ssh.Client, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, "tcp", e.hostport())
	if err != nil {
		return nil, fmt.Errorf("host %s (%s): %w: %v", e.Name, e.hostport(), ErrUnreachable, err)
	}
	return d.handshakeConn(ctx, e, conn)
}

// handshakeConn runs the SSH handshake on conn, bounded by ctx.
func (d *sshDialer) handshakeConn(ctx context.Context, e SSHEndpoint, conn net.Conn) (*ssh.Client, error) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, e.hostport(), d.clientConfig(e))
	if err != nil {
		conn.Close()
		if errors.Is(err, ErrHostKeyUnknown) || errors.Is(err, ErrHostKeyChanged) {
			return nil, err
		}
		// The server's words (a disconnect message) are escaped.
		return nil, fmt.Errorf("host %s (%s): ssh login as %s: %w", e.Name, e.hostport(), d.cfg.User, escape.Err(err))
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}
