package rotate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"sync"
	"time"

	"github.com/pcmkeys/pcmkeys/audit"
	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// Env is what a workflow runs against.
type Env struct {
	Config *config.Config
	Store  keystore.Store
	// Connect opens a host; by default local hosts are written directly
	// and the others over SSH.
	Connect func(ctx context.Context, h config.Host) (distribute.Host, error)
	// Operator names who runs the workflow, for the store's metadata.
	Operator string
	// Parallel bounds how many hosts are worked on at once.
	Parallel int
	// DryRun plans without changing the store or any host.
	DryRun bool
	// LockWait is how long a workflow waits for the cluster's lock that
	// another run holds (0: it fails at once, naming the holder).
	LockWait time.Duration
	Log      *slog.Logger
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Progress, if set, is called as each host finishes, one call at a time.
	Progress func(done, total int, r HostResult)
	// Audit, if set, is the trail every workflow that changes something
	// appends to; VaultIdentity goes into its records.
	Audit         *audit.Log
	VaultIdentity string

	// dryNew holds the fingerprints of keys a dry run generated: they
	// will never be used (the real run generates others), so the plan
	// shows "(new key)" instead.
	dryNew sync.Map

	sshOnce sync.Once
	ssh     *distribute.SSHDialer
	sshErr  error
}

func (e *Env) connect(ctx context.Context, h config.Host) (distribute.Host, error) {
	if e.Connect != nil {
		return e.Connect(ctx, h)
	}
	if h.Local {
		return distribute.NewLocal(h.Name, h.Root)
	}
	e.sshOnce.Do(func() {
		cfg := sshConfig(e.Config)
		cfg.Log = e.log()
		e.ssh, e.sshErr = distribute.NewSSHDialer(cfg)
	})
	if e.sshErr != nil {
		return nil, e.sshErr
	}
	return e.ssh.Open(ctx, h.Name, distribute.SSHEndpoint{Address: h.Address, Port: h.Port}, h.Root)
}

// sshConfig maps the config's ssh section for the transport, with what
// each host's entry wrote (which wins over ~/.ssh/config): an address
// other than its name, a port, a user (its own, else a written ssh.user).
func sshConfig(c *config.Config) distribute.SSHConfig {
	out := distribute.SSHConfig{
		User: c.SSH.User, KnownHosts: c.SSH.KnownHosts, ExtraKnownHosts: c.SSH.ExtraKnownHosts, Sudo: c.SSH.Become == "sudo",
		IdentityFiles: c.SSH.IdentityFiles, DefaultIdentityFiles: c.SSH.DefaultIdentityFiles,
		ConnectTimeout: c.SSH.ConnectTimeout, CommandTimeout: c.SSH.CommandTimeout,
		OpenSSHConfig: c.SSH.ConfigFile, Hosts: map[string]distribute.SSHHostConfig{},
	}
	if j := c.SSH.Jump; j != nil {
		out.Jump = &distribute.SSHEndpoint{Name: "jump " + j.Address, Address: j.Address, Port: j.Port}
	}
	for _, h := range c.Hosts {
		addr, port, u := c.Login(h)
		out.Hosts[h.Name] = distribute.SSHHostConfig{Address: addr, Port: port, User: u}
	}
	return out
}

// Close releases what the workflows opened (the SSH agent connection).
func (e *Env) Close() {
	if e.ssh != nil {
		e.ssh.Close()
	}
}

func (e *Env) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return e.Log
}

// CurrentOperator returns the OS user running pcmkeys.
func CurrentOperator() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

// ErrBadInput marks an error in what the operator asked for; nothing was
// changed.
var ErrBadInput = errors.New("bad input")

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadInput, fmt.Sprintf(format, args...))
}

// generate makes a new key of the policy's size for its kind; in a dry run it remembers that its
// fingerprint is not to be shown.
func (e *Env) generate(k keys.Kind) (keys.Secret, error) {
	key, err := keys.Generate(k, e.Config.Policy.KeySize(k))
	if err == nil && e.DryRun {
		e.dryNew.Store(key.Fingerprint(), true)
	}
	return key, err
}

// NewKeyMarker stands in a dry run's plan for the fingerprint of a key the
// real run will generate.
const NewKeyMarker = "(new key)"

// shown is the fingerprint a report shows for fp.
func (e *Env) shown(fp string) string {
	if _, ok := e.dryNew.Load(fp); ok {
		return NewKeyMarker
	}
	return fp
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}
