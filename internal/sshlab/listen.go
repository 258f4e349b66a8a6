package sshlab

import (
	"fmt"
	"io"
	"net"
	"sync"
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
// socket belongs to it for its life.
func listenInNetns(pid int, addr string) (net.Listener, error) {
	return listenIn(fmt.Sprintf("/proc/%d/ns/net", pid), addr)
}
