package distribute

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// loadSigners gathers the keys every host is offered: the agent's, then
// IdentityFiles (each must load), then DefaultIdentityFiles (those that
// load).
func (d *sshDialer) loadSigners() error {
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			d.agent = conn
			if s, err := agent.NewClient(conn).Signers(); err == nil {
				d.signers = append(d.signers, s...)
			}
		} else {
			d.log.Debug("ssh: no agent", "SSH_AUTH_SOCK", sock, "err", err)
		}
	}
	for _, f := range d.cfg.IdentityFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("ssh: identity file: %w", err)
		}
		s, err := ssh.ParsePrivateKey(b)
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return fmt.Errorf("ssh: identity file %s has a passphrase: add it to ssh-agent instead", f)
		}
		if err != nil {
			return fmt.Errorf("ssh: identity file %s: %w", f, err)
		}
		d.signers = append(d.signers, s)
	}
	for _, f := range d.cfg.DefaultIdentityFiles {
		if s := d.optionalKey(f); s != nil {
			d.signers = append(d.signers, s)
		}
	}
	return nil
}

// optionalKey loads a key that may be missing or need a passphrase (a
// default one, an IdentityFile of the OpenSSH config): those are skipped,
// as ssh would, but never prompted for.
func (d *sshDialer) optionalKey(path string) ssh.Signer {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		d.log.Debug("ssh: no identity file here", "path", path)
		return nil
	}
	if err != nil {
		d.log.Warn("ssh: identity file skipped", "path", path, "err", err)
		return nil
	}
	s, err := ssh.ParsePrivateKey(b)
	var pp *ssh.PassphraseMissingError
	if errors.As(err, &pp) {
		d.log.Debug("ssh: identity file skipped: it has a passphrase (add it to ssh-agent to use it)", "path", path)
		return nil
	}
	if err != nil {
		d.log.Warn("ssh: identity file skipped", "path", path, "err", err)
		return nil
	}
	return s
}

// routeSigners returns the keys offered to r's host: its own IdentityFile
// keys first, as ssh does, then the dialer's, each key once.
func (d *sshDialer) routeSigners(r *route) []ssh.Signer {
	var out []ssh.Signer
	seen := map[string]bool{}
	add := func(s ssh.Signer) {
		k := string(s.PublicKey().Marshal())
		if !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	for _, f := range r.identity {
		d.mu.Lock()
		s, done := d.keys[f]
		if !done {
			s = d.optionalKey(f)
			d.keys[f] = s
		}
		d.mu.Unlock()
		if s != nil {
			add(s)
		}
	}
	for _, s := range d.signers {
		add(s)
	}
	return out
}

// hostKeyDB returns the known_hosts database of KnownHosts,
// ExtraKnownHosts and extra together (a key is known if any holds it),
// and the files that were there to read. A missing file is skipped; one
// that cannot be read is an error.
func (d *sshDialer) hostKeyDB(extra []string) (ssh.HostKeyCallback, []string, error) {
	var files []string
	seen := map[string]bool{}
	for _, f := range append(append([]string{d.cfg.KnownHosts}, d.cfg.ExtraKnownHosts...), extra...) {
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, nil, fmt.Errorf("ssh: known_hosts %s: %w", f, err)
		}
		files = append(files, f)
	}
	key := strings.Join(files, "\x00")
	d.mu.Lock()
	defer d.mu.Unlock()
	if cb, ok := d.hostKeys[key]; ok {
		return cb, files, nil
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh: known_hosts %s: %w", strings.Join(files, ", "), err)
	}
	d.hostKeys[key] = cb
	return cb, files, nil
}

// trustFile is the known_hosts file an unknown key's message says to
// append to: the host's own, else the configured one.
func (d *sshDialer) trustFile(r *route) string {
	switch {
	case len(r.knownHosts) > 0:
		return r.knownHosts[0]
	case d.cfg.KnownHosts != "":
		return d.cfg.KnownHosts
	}
	return d.cfg.ExtraKnownHosts[0]
}

func filesRead(files []string) string {
	if len(files) == 0 {
		return "no known_hosts file exists"
	}
	return strings.Join(files, ", ")
}
