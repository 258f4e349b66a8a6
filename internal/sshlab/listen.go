package sshlab

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// ForwardInto makes a service of the machine reachable from inside a host
// with its own network: it listens on addr (such as "127.0.0.1:8200") in
// the host's network namespace and relays every connection to target in
// the test process's own network (a test Vault on the machine's loopback,
// say). It stops when the lab stops the host or close is called.
func (h *Host) ForwardInto(addr, target string) (close func(), err error) {
	if !h.OwnNetwork {
		return nil, fmt.Errorf("%s shares the machine's network: reach %s directly", h.Name, target)
	}
	pid := h.PID()
	if pid == 0 {
		return nil, fmt.Errorf("%s is not running", h.Name)
	}
	ln, err := listenInNetns(pid, addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s inside %s: %w", addr, h.Name, err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, c); done <- struct{}{} }()
				go func() { io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return func() { ln.Close() }, nil
}

// listenInNetns opens a listener in the network namespace of pid: the
// socket is made on a thread switched into that namespace, and belongs to
// it for its life; the thread then switches back.
func listenInNetns(pid int, addr string) (net.Listener, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, err
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread is in the wrong namespace: never hand it back.
		runtime.Goexit()
	}
	return ln, lerr
}
