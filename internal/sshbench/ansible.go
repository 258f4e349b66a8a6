package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Ansible as its users run it for a file like this one: a copy task with
// owner, group and mode, no facts, pipelining on, and the ControlMaster
// and ControlPersist Ansible's ssh connection sets by default (less -C,
// which OpenSSH's rows do not use either). Its control sockets live in a
// directory made fresh for every run, so no run reuses the previous one's
// connections; the masters are told to exit after it.

const ansiblePlay = `- hosts: lab
  gather_facts: false
  tasks:
    - name: write the file
      copy:
        src: %s
        dest: /etc/pacemaker/bench
        owner: hacluster
        group: haclient
        mode: "0600"
`

// writeAnsible writes the inventory, ansible.cfg and the playbook.
func (c *cluster) writeAnsible(e *env, inventory string) error {
	dir := filepath.Join(c.dir, "ansible")
	ssh := strings.Join([]string{"-F /dev/null", "-o ControlMaster=auto", "-o ControlPersist=60s",
		"-o KexAlgorithms=curve25519-sha256", "-o UserKnownHostsFile=" + e.lab.KnownHosts,
		"-o GlobalKnownHostsFile=/dev/null", "-o IdentitiesOnly=yes", "-o BatchMode=yes"}, " ")
	cfg := fmt.Sprintf(`[defaults]
inventory = %s
forks = %d
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
private_key_file = %s
remote_user = root
retry_files_enabled = False
nocows = True

[ssh_connection]
pipelining = True
ssh_args = %s
control_path_dir = %s
`, filepath.Join(dir, "inventory.ini"), c.forks, e.lab.IdentityFile, ssh, filepath.Join(dir, "cp"))
	for name, content := range map[string]string{
		"inventory.ini": inventory,
		"ansible.cfg":   cfg,
		"play.yml":      fmt.Sprintf(ansiblePlay, c.payload),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ansibleSetup gives the run an empty control directory.
func (c *cluster) ansibleSetup() error {
	cp := filepath.Join(c.dir, "ansible", "cp")
	if err := os.RemoveAll(cp); err != nil {
		return err
	}
	return os.Mkdir(cp, 0o700)
}

// ansibleTeardown tells every master the run left to exit.
func (c *cluster) ansibleTeardown(e *env) error {
	cp := filepath.Join(c.dir, "ansible", "cp")
	socks, err := filepath.Glob(filepath.Join(cp, "*"))
	if err != nil || len(socks) == 0 {
		return err
	}
	script := `printf '%s\n' "$@" | xargs -P 50 -I{} ssh -F /dev/null -o ControlPath={} -O exit lab 2>/dev/null; true`
	return quiet(e.link.Argv(append([]string{"sh", "-c", script, "_"}, socks...)...))
}
