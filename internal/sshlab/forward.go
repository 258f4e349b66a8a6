package sshlab

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pcmkeys/pcmkeys/internal/sshfwd"
)

// forward opens the door of a host with a network of its own (see
// internal/sshfwd): 127.0.0.1:Port hands every connection to an `sshd -i`
// inside the host's namespaces. h.mu is held and the namespace holder is
// ready.
func (h *Host) forward() error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port)))
	if err != nil {
		return fmt.Errorf("listen for %s: %w", h.Name, err)
	}
	logPath := filepath.Join(h.dir, "sshd.log")
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		ln.Close()
		return err
	}
	argv := append([]string{"nsenter"}, h.nsenterArgs(h.cmd.Process.Pid)...)
	argv = append(argv, "--", "/usr/sbin/sshd", "-i", "-e", "-f", filepath.Join(h.dir, "sshd_config"))
	h.fwd = sshfwd.Start(ln, log, func() []string { return argv })
	// The host is up when its sshd answers with its banner.
	return sshfwd.CheckBanner(ln.Addr().String(), h.Name, logPath)
}
