package distribute

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kevinburke/ssh_config"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
)

// route is how one host is reached, resolved from pcmkeys's config, the
// OpenSSH config and the defaults.
type route struct {
	ep       SSHEndpoint // the address and port dialled, under the host's name
	user     string
	userFrom string   // " (User in FILE)" when the OpenSSH config chose the user
	identity []string // the OpenSSH config's IdentityFile: offered first
	// knownHosts are the OpenSSH config's UserKnownHostsFile, read
	// besides KnownHosts and ExtraKnownHosts.
	knownHosts []string
	jump       *route
}

// readOpenSSH parses the OpenSSH config file, if one is named and there.
// Like ssh, it refuses a file that someone else could have written: it
// says where connections go and which host keys are trusted.
func (d *sshDialer) readOpenSSH() error {
	path := d.cfg.OpenSSHConfig
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		d.log.Debug("ssh: no OpenSSH config", "path", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("ssh: OpenSSH config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("ssh: OpenSSH config: %w", err)
	}
	if err := checkOwnFile(fi); err != nil {
		return fmt.Errorf("ssh: OpenSSH config %s: %w (ssh refuses it too)", path, err)
	}
	c, err := ssh_config.Decode(f)
	if err != nil {
		return fmt.Errorf("ssh: OpenSSH config %s: %s (fix it, or set ssh.use_ssh_config: false)", path, escape.String(err.Error()))
	}
	d.openssh = c
	return nil
}

// checkOwnFile accepts a regular file owned by this user or root that no
// one else may write.
func checkOwnFile(fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("bad permissions %04o: group or others may write it", fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("bad owner: uid %d is neither you nor root", st.Uid)
	}
	return nil
}

// sshOptions is what the OpenSSH config says of one host.
type sshOptions struct {
	hostName, port, user, proxyJump, proxyCommand, knownHosts string
	identity                                                  []string
}

func (d *sshDialer) options(alias string) (sshOptions, error) {
	var o sshOptions
	if d.openssh == nil {
		return o, nil
	}
	for _, kv := range []struct {
		key string
		to  *string
	}{{"HostName", &o.hostName}, {"Port", &o.port}, {"User", &o.user}, {"ProxyJump", &o.proxyJump},
		{"ProxyCommand", &o.proxyCommand}, {"UserKnownHostsFile", &o.knownHosts}} {
		v, err := d.openssh.Get(alias, kv.key)
		if err != nil {
			return o, d.optErr(alias, kv.key, err.Error())
		}
		*kv.to = v
	}
	ids, err := d.openssh.GetAll(alias, "IdentityFile")
	if err != nil {
		return o, d.optErr(alias, "IdentityFile", err.Error())
	}
	o.identity = ids
	if v, _ := d.openssh.Get(alias, "StrictHostKeyChecking"); v != "" && !strings.EqualFold(v, "yes") {
		d.log.Debug("ssh: StrictHostKeyChecking is ignored: host keys are always checked", "host", alias, "value", v)
	}
	return o, nil
}

func (d *sshDialer) optErr(alias, key, msg string) error {
	return fmt.Errorf("ssh: OpenSSH config %s, host %s: %s: %s", d.cfg.OpenSSHConfig, alias, key, escape.String(msg))
}

// resolve works out how to reach the host e names: each field from
// pcmkeys's config if it sets it, else the OpenSSH config, else e and the
// defaults.
func (d *sshDialer) resolve(e SSHEndpoint) (*route, error) {
	o, err := d.options(e.Name)
	if err != nil {
		return nil, err
	}
	own := d.cfg.Hosts[e.Name]
	r := &route{ep: e, user: d.cfg.User}
	if err := d.apply(r, o, e.Name); err != nil {
		return nil, err
	}
	if own.Address != "" {
		r.ep.Address = own.Address
	}
	if own.Port != 0 {
		r.ep.Port = own.Port
	}
	if own.User != "" {
		r.user, r.userFrom = own.User, ""
	}
	if err := d.applyFiles(r, o, e.Name); err != nil {
		return nil, err
	}
	if r.userFrom != "" && r.user != "root" && !d.cfg.Sudo {
		return nil, fmt.Errorf("host %s: the OpenSSH config %s logs in as %s, not root: set ssh.become: sudo (passwordless sudo), or user: root for the host",
			e.Name, d.cfg.OpenSSHConfig, r.user)
	}
	switch {
	case d.cfg.Jump != nil:
		r.jump = &route{ep: *d.cfg.Jump, user: d.cfg.User}
	case o.proxyJump != "" && !strings.EqualFold(o.proxyJump, "none"):
		if r.jump, err = d.jumpRoute(e.Name, o.proxyJump); err != nil {
			return nil, err
		}
	case o.proxyCommand != "" && !strings.EqualFold(o.proxyCommand, "none"):
		return nil, d.optErr(e.Name, "ProxyCommand", "not supported (pcmkeys runs no local command to connect): use ProxyJump, or ssh.jump")
	}
	return r, nil
}

// apply sets the OpenSSH config's address, port and user for alias on r.
func (d *sshDialer) apply(r *route, o sshOptions, alias string) error {
	if o.hostName != "" {
		h, err := expandHostName(o.hostName, alias)
		if err != nil {
			return d.optErr(alias, "HostName", err.Error())
		}
		r.ep.Address = h
	}
	if o.port != "" {
		p, err := strconv.Atoi(o.port)
		if err != nil || p < 1 || p > 65535 {
			return d.optErr(alias, "Port", fmt.Sprintf("%q is not a TCP port", o.port))
		}
		r.ep.Port = p
	}
	if o.user != "" {
		r.user, r.userFrom = o.user, " (User in "+d.cfg.OpenSSHConfig+")"
	}
	return nil
}

// applyFiles sets the OpenSSH config's files for alias on r, once r's
// address, port and user (which their tokens name) are known.
func (d *sshDialer) applyFiles(r *route, o sshOptions, alias string) error {
	for _, f := range o.identity {
		p, err := expandPath(f, alias, r)
		if err != nil {
			return d.optErr(alias, "IdentityFile", err.Error())
		}
		r.identity = append(r.identity, p)
	}
	if o.knownHosts != "" && !strings.EqualFold(o.knownHosts, "none") {
		for _, f := range strings.Fields(o.knownHosts) {
			p, err := expandPath(f, alias, r)
			if err != nil {
				return d.optErr(alias, "UserKnownHostsFile", err.Error())
			}
			r.knownHosts = append(r.knownHosts, p)
		}
	}
	return nil
}

// jumpRoute resolves a ProxyJump of one hop: [user@]host[:port] or
// ssh://[user@]host[:port], host being looked up in the OpenSSH config in
// its turn.
func (d *sshDialer) jumpRoute(alias, spec string) (*route, error) {
	if strings.Contains(spec, ",") {
		return nil, d.optErr(alias, "ProxyJump", fmt.Sprintf("%q has more than one hop; pcmkeys goes through one", spec))
	}
	juser, jhost, jport, err := parseJump(spec)
	if err != nil {
		return nil, d.optErr(alias, "ProxyJump", err.Error())
	}
	o, err := d.options(jhost)
	if err != nil {
		return nil, err
	}
	if o.proxyJump != "" && !strings.EqualFold(o.proxyJump, "none") {
		return nil, d.optErr(alias, "ProxyJump", fmt.Sprintf("the jump host %s has a ProxyJump of its own; pcmkeys goes through one hop", jhost))
	}
	if o.proxyCommand != "" && !strings.EqualFold(o.proxyCommand, "none") {
		return nil, d.optErr(jhost, "ProxyCommand", "not supported on a jump host")
	}
	j := &route{ep: SSHEndpoint{Name: "jump " + jhost, Address: jhost, Port: 22}, user: d.cfg.User}
	if err := d.apply(j, o, jhost); err != nil {
		return nil, err
	}
	if juser != "" {
		j.user = juser
	}
	if jport != 0 {
		j.ep.Port = jport
	}
	if err := d.applyFiles(j, o, jhost); err != nil {
		return nil, err
	}
	return j, nil
}

// parseJump splits a ProxyJump hop.
func parseJump(spec string) (user, host string, port int, err error) {
	bad := fmt.Errorf("%q is not [user@]host[:port]", spec)
	if rest, ok := strings.CutPrefix(spec, "ssh://"); ok {
		u, perr := url.Parse("ssh://" + rest)
		if perr != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", "", 0, bad
		}
		user, host = u.User.Username(), u.Hostname()
		if u.Port() != "" {
			if port, err = strconv.Atoi(u.Port()); err != nil || port == 0 {
				return "", "", 0, bad
			}
		}
	} else {
		if i := strings.LastIndex(spec, "@"); i >= 0 {
			user, spec = spec[:i], spec[i+1:]
		}
		host = spec
		if h, p, serr := net.SplitHostPort(spec); serr == nil {
			host = h
			if port, err = strconv.Atoi(p); err != nil || port == 0 {
				return "", "", 0, bad
			}
		} else if strings.HasPrefix(spec, "[") {
			return "", "", 0, bad
		}
	}
	if host == "" || strings.ContainsAny(host, " \t/@") || strings.ContainsAny(user, " \t:/") || port < 0 || port > 65535 || spec == "" {
		return "", "", 0, bad
	}
	return user, host, port, nil
}

// expandHostName expands HostName's tokens: %h (the name) and %%.
func expandHostName(v, alias string) (string, error) {
	out, err := expandTokens(v, map[byte]string{'h': alias, 'n': alias})
	if err != nil {
		return "", err
	}
	if out == "" || strings.ContainsAny(out, " \t/@") || strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", fmt.Errorf("%q is not a host name or address", v)
	}
	return out, nil
}

// expandPath expands a file name as ssh does (~/, %d, %u, %h, %n, %p, %r,
// %%); the result must be absolute.
func expandPath(v, alias string, r *route) (string, error) {
	home, herr := os.UserHomeDir()
	if v == "~" || strings.HasPrefix(v, "~/") {
		if herr != nil {
			return "", fmt.Errorf("cannot expand ~ in %q: %w", v, herr)
		}
		v = home + v[1:]
	}
	local := ""
	if u, err := user.Current(); err == nil {
		local = u.Username
	}
	out, err := expandTokens(v, map[byte]string{'d': home, 'u': local, 'h': r.ep.Address, 'n': alias, 'p': strconv.Itoa(r.ep.Port), 'r': r.user})
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(out) {
		return "", fmt.Errorf("%q is not an absolute path (write ~/… or /…)", v)
	}
	return filepath.Clean(out), nil
}

func expandTokens(v string, tokens map[byte]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 == len(v) {
			return "", fmt.Errorf("%q ends in a lone %%", v)
		}
		i++
		if v[i] == '%' {
			b.WriteByte('%')
			continue
		}
		t, ok := tokens[v[i]]
		if !ok || t == "" {
			return "", fmt.Errorf("%q: token %%%c is not supported here", v, v[i])
		}
		b.WriteString(t)
	}
	return b.String(), nil
}
