package sshlab

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// InNetns runs f on an OS thread switched into the network namespace at
// path (such as /proc/PID/ns/net): sockets f opens belong to that
// namespace for their life. The thread switches back afterwards; a thread
// that cannot is never handed back to Go (runtime.Goexit, the goroutine
// ends: callers run InNetns in a goroutine of its own when that matters).
func InNetns(path string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open(path)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread is in the wrong namespace: never hand it back.
		runtime.Goexit()
	}
	return ferr
}

// listenIn listens on addr in the network namespace at netns, or in the
// process's own when netns is "".
func listenIn(netns, addr string) (net.Listener, error) {
	if netns == "" {
		return net.Listen("tcp", addr)
	}
	var ln net.Listener
	err := InNetns(netns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// freePortIn asks the kernel for a free port on address in netns.
func freePortIn(netns, address string) (int, error) {
	ln, err := listenIn(netns, net.JoinHostPort(address, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// dialIn connects to address:port from inside netns (or the process's own
// network) to see that something listens there.
func dialIn(netns, address string, port int, timeout time.Duration) error {
	addr := net.JoinHostPort(address, strconv.Itoa(port))
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err == nil {
			c.Close()
		}
		return err
	}
	if netns == "" {
		return dial()
	}
	return InNetns(netns, dial)
}
