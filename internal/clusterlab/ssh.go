package clusterlab

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pcmkeys/pcmkeys/internal/sshfwd"
)

// SSH into nodes works as in internal/sshlab's hosts with a network of
// their own, through the same forwarder (internal/sshfwd): a listener on
// 127.0.0.1:Port (the machine's network) hands every connection, as stdin
// and stdout, to an `sshd -i` started inside the node's namespaces
// (nsenter into its init), so the session runs "on" the node: its files, its daemons, its crm_mon. While the node is off the
// port accepts and closes at once, as a dead host's would time out; after
// a reboot the same port and host key serve the new boot.

// sshdConfig is every node's sshd_config (root by key only).
const sshdConfig = `HostKey %s
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PrintMotd no
LogLevel ERROR
MaxSessions 64
`

// setupSSH writes the node's host key and sshd_config and opens its
// listener.
func (n *Node) setupSSH() error {
	key := filepath.Join(n.dir, "ssh_host_ed25519_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", n.Name, "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen for %s: %v: %s", n.Name, err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(sshdConfig, key, filepath.Join(n.lab.Dir, "authorized_keys"))
	if err := os.WriteFile(filepath.Join(n.dir, "sshd_config"), []byte(cfg), 0o644); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	n.Port = ln.Addr().(*net.TCPAddr).Port
	f := strings.Fields(string(pub))
	n.HostKeyLine = fmt.Sprintf("[127.0.0.1]:%d %s %s", n.Port, f[0], f[1])
	log, err := os.OpenFile(filepath.Join(n.dir, "sshd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		ln.Close()
		return err
	}
	n.fwd = sshfwd.Start(ln, log, n.sshdArgv)
	return nil
}

// sshdArgv is the command that serves one connection: an sshd -i inside
// the node as it is now, or nil while it is off.
func (n *Node) sshdArgv() []string {
	pid := n.PID()
	if pid == 0 {
		return nil
	}
	argv := append([]string{"nsenter"}, nsenterArgs(pid)...)
	return append(argv, "--", "/usr/sbin/sshd", "-i", "-e", "-f", filepath.Join(n.dir, "sshd_config"))
}

// checkSSH reports whether the node's sshd answers with its banner.
func (n *Node) checkSSH() error {
	return sshfwd.CheckBanner(fmt.Sprintf("127.0.0.1:%d", n.Port), n.Name, filepath.Join(n.dir, "sshd.log"))
}
