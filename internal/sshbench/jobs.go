package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/internal/sshbench/netem"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// A cluster is the first n hosts of the lab with what the jobs need to
// reach them: the pcmkeys config (its own store) and Ansible's files.
type cluster struct {
	n       int
	hosts   []*sshlab.Host
	dir     string
	cfg     string // pcmkeys's config
	ports   string // "p1 p2 …"
	forks   int    // Ansible's
	admins  map[string]bool
	payload string
}

// env is what every job shares.
type env struct {
	dir  string
	bin  string // pcmkeys, built from this tree
	link *netem.Link
	lab  *sshlab.Lab
}

// A job is one row of the table.
type job struct {
	name, title string
	pcmkeys     bool
	// parallel is how many hosts the job works on at once.
	parallel func(c *cluster) int
	setup    func(e *env, c *cluster) error // before each run, untimed
	argv     func(e *env, c *cluster) []string
	teardown func(e *env, c *cluster) error // after each run, untimed
}

func all(c *cluster) int { return c.n }

// pcmkeysNofile, when set, is the RLIMIT_NOFILE (soft and hard) the timed
// pcmkeys runs get (prlimit): to see what a low hard limit does.
var pcmkeysNofile int

// sshArgs are every OpenSSH client's options: the lab's keys only, no
// config file, curve25519.
func sshArgs(l *sshlab.Lab) []string {
	return []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + l.KnownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-i", l.IdentityFile, "-l", "root", "-o", "KexAlgorithms=curve25519-sha256"}
}

// xargsSSH runs `ssh OPTS -p PORT ADDR CMD [< payload]` for every port of
// the cluster, n-wide.
func xargsSSH(e *env, c *cluster, opts []string, cmd string, stdin string) []string {
	ssh := "ssh " + strings.Join(quoteAll(append(sshArgs(e.lab), opts...)), " ") + ` -p "$1" ` + netem.LabAddr
	if cmd != "" {
		ssh += " " + quoteAll([]string{cmd})[0]
	}
	if stdin != "" {
		ssh += " < " + quoteAll([]string{stdin})[0]
	}
	script := fmt.Sprintf(`printf '%%s\n' %s | xargs -P %d -I{} sh -c %s _ {}`, c.ports, c.n, quoteAll([]string{"exec " + ssh})[0])
	return e.link.Argv("sh", "-c", script)
}

const oneShot = "cat > /etc/pacemaker/bench.tmp && mv /etc/pacemaker/bench.tmp /etc/pacemaker/bench"

// scaleJobs are the table's rows, in the order each run takes them.
func scaleJobs() []job {
	cmDir := func(c *cluster) string { return filepath.Join(c.dir, "cm") }
	cmOpts := func(c *cluster) []string { return []string{"-o", "ControlPath=" + cmDir(c) + "/%p"} }
	pcmkeys := func(e *env, c *cluster, args ...string) []string {
		argv := append([]string{e.bin, "--config", c.cfg}, args...)
		if pcmkeysNofile > 0 {
			argv = append([]string{"prlimit", fmt.Sprintf("--nofile=%d:%d", pcmkeysNofile, pcmkeysNofile), "--"}, argv...)
		}
		return e.link.Argv(argv...)
	}
	admins := func(e *env, c *cluster) error { return c.admit(e, "alice", "bob") }
	return []job{
		{name: "floor", title: "floor: ssh HOST true, N-wide", parallel: all,
			argv: func(e *env, c *cluster) []string {
				return xargsSSH(e, c, []string{"-o", "ControlMaster=no"}, "true", "")
			}},
		{name: "ssh", title: "OpenSSH one-shot write (cat > tmp && mv)", parallel: all,
			argv: func(e *env, c *cluster) []string {
				return xargsSSH(e, c, []string{"-o", "ControlMaster=no"}, oneShot, c.payload)
			}},
		{name: "ssh-cm", title: "OpenSSH ControlMaster write (masters open)", parallel: all,
			setup: func(e *env, c *cluster) error {
				os.RemoveAll(cmDir(c))
				if err := os.Mkdir(cmDir(c), 0o700); err != nil {
					return err
				}
				return quiet(xargsSSH(e, c, append(cmOpts(c), "-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-f", "-N"), "", ""))
			},
			argv: func(e *env, c *cluster) []string {
				return xargsSSH(e, c, append(cmOpts(c), "-o", "ControlMaster=no"), oneShot, c.payload)
			},
			teardown: func(e *env, c *cluster) error {
				return quiet(xargsSSH(e, c, append(cmOpts(c), "-O", "exit"), "", ""))
			}},
		{name: "ansible", title: "Ansible copy, pipelining", parallel: func(c *cluster) int { return c.forks },
			setup: func(e *env, c *cluster) error { return c.ansibleSetup() },
			argv: func(e *env, c *cluster) []string {
				return e.link.Argv("env", "ANSIBLE_CONFIG="+filepath.Join(c.dir, "ansible", "ansible.cfg"),
					"ansible-playbook", filepath.Join(c.dir, "ansible", "play.yml"))
			},
			teardown: func(e *env, c *cluster) error { return c.ansibleTeardown(e) }},
		{name: "rotate", title: "pcmkeys rotate --cib, default --parallel", pcmkeys: true, setup: admins,
			parallel: func(c *cluster) int { return min(c.n, distribute.DefaultParallel) },
			argv:     func(e *env, c *cluster) []string { return pcmkeys(e, c, "rotate", "--cib") }},
		{name: "rotate-n", title: "pcmkeys rotate --cib, --parallel N", pcmkeys: true, setup: admins, parallel: all,
			argv: func(e *env, c *cluster) []string {
				return pcmkeys(e, c, "--parallel", strconv.Itoa(c.n), "rotate", "--cib")
			}},
		{name: "revoke", title: "pcmkeys revoke, default --parallel", pcmkeys: true, setup: admins,
			parallel: func(c *cluster) int { return min(c.n, distribute.DefaultParallel) },
			argv:     func(e *env, c *cluster) []string { return pcmkeys(e, c, "revoke", "alice") },
			teardown: func(e *env, c *cluster) error { delete(c.admins, "alice"); return nil }},
		{name: "revoke-n", title: "pcmkeys revoke, --parallel N", pcmkeys: true, setup: admins, parallel: all,
			argv: func(e *env, c *cluster) []string {
				return pcmkeys(e, c, "--parallel", strconv.Itoa(c.n), "revoke", "alice")
			},
			teardown: func(e *env, c *cluster) error { delete(c.admins, "alice"); return nil }},
	}
}

// newCluster writes the config and Ansible's files for the first n hosts
// (in e.dir/name) and runs pcmkeys init.
func newCluster(e *env, name string, n, ansibleForks int, payload string) (*cluster, error) {
	c := &cluster{n: n, hosts: e.lab.Hosts[:n], dir: filepath.Join(e.dir, name),
		forks: min(n, ansibleForks), admins: map[string]bool{}, payload: payload}
	if err := os.MkdirAll(filepath.Join(c.dir, "ansible"), 0o700); err != nil {
		return nil, err
	}
	var nodes, inv, ports strings.Builder
	inv.WriteString("[lab]\n")
	for _, h := range c.hosts {
		fmt.Fprintf(&nodes, "  - {name: %s, address: %s, port: %d}\n", h.Name, h.Address, h.Port)
		fmt.Fprintf(&inv, "%s ansible_host=%s ansible_port=%d ansible_user=root\n", h.Name, h.Address, h.Port)
		fmt.Fprintf(&ports, "%d ", h.Port)
	}
	c.ports = strings.TrimSpace(ports.String())
	c.cfg = filepath.Join(c.dir, "pcmkeys.yaml")
	// Each cluster its own name, so its admins' key files (NAME.key in
	// their homes on host00) never meet another's: the capture's
	// cluster "rtt" and "cluster-3" share their hosts.
	doc := fmt.Sprintf("cluster: bench%s\nstore: {type: file, path: store}\nidentity_mode: per-user\naudit: {path: audit.jsonl}\n"+
		"ssh: {known_hosts: %s, identity_files: [%s], use_ssh_config: false, connect_timeout: 120s, command_timeout: 300s}\n"+
		"cib: {port: 5403}\nnodes:\n%s",
		strings.TrimPrefix(name, "cluster-"), e.lab.KnownHosts, e.lab.IdentityFile, nodes.String())
	if err := os.WriteFile(c.cfg, []byte(doc), 0o600); err != nil {
		return nil, err
	}
	if err := c.writeAnsible(e, inv.String()); err != nil {
		return nil, err
	}
	if err := quiet(e.link.Argv(e.bin, "--config", c.cfg, "init")); err != nil {
		return nil, err
	}
	return c, nil
}

// admit onboards these admins (client files on host00) unless they are.
func (c *cluster) admit(e *env, users ...string) error {
	for _, u := range users {
		if c.admins[u] {
			continue
		}
		if err := quiet(e.link.Argv(e.bin, "--config", c.cfg, "--parallel", strconv.Itoa(c.n), "onboard", u, "--client", c.hosts[0].Name)); err != nil {
			return err
		}
		c.admins[u] = true
	}
	return nil
}

// quiet runs argv and returns its output with the error when it fails.
func quiet(argv []string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		s := string(out)
		if len(s) > 4000 {
			s = "…" + s[len(s)-4000:]
		}
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, s)
	}
	return nil
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}
