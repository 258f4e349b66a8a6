package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// Waiting on signals, not on guessed durations: a line a process writes,
// a process that exits, a process that starts.

// syncBuffer is an output a test can wait on: WaitFor returns as soon as
// the text written so far holds a string.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed and replaced on every write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		close(b.written)
	}
	b.written = make(chan struct{})
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitFor waits up to timeout for s to appear in the output and reports
// whether it did.
func (b *syncBuffer) WaitFor(s string, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		if strings.Contains(b.b.String(), s) {
			b.mu.Unlock()
			return true
		}
		if b.written == nil {
			b.written = make(chan struct{})
		}
		written := b.written
		b.mu.Unlock()
		select {
		case <-written:
		case <-deadline.C:
			return false
		}
	}
}

// hostProcs returns the processes of a lab host (its mount namespace)
// other than the host's own sshd whose command line (NUL-separated argv)
// starts with prefix.
func hostProcs(h *sshlab.Host, prefix string) ([]int, error) {
	self := h.PID()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", self))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.Name, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if got, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/mnt")); err != nil || got != ns {
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.HasPrefix(cmdline, []byte(prefix)) {
			out = append(out, pid)
		}
	}
	return out, nil
}

// waitStarted waits up to timeout until some host of hosts runs a process
// whose command line starts with prefix (there is no event for another
// process's start: /proc is read every 20 ms).
func waitStarted(hosts []*sshlab.Host, prefix string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		for _, h := range hosts {
			if pids, err := hostProcs(h, prefix); err != nil || len(pids) > 0 {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no process %q started on the hosts within %v", strings.ReplaceAll(prefix, "\x00", " "), timeout)
		}
	}
}

// waitExited waits up to timeout until every process in pids has exited,
// on a pidfd of each (readable when the process exits).
func waitExited(pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue // gone already
		}
		if err != nil {
			return fmt.Errorf("pidfd_open %d: %w", pid, err)
		}
		n := 0
		for {
			ms := max(int(time.Until(deadline).Milliseconds()), 0)
			n, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("poll pidfd of %d: %w", pid, err)
		}
		if n == 0 {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			return fmt.Errorf("process %d (%s) still running after %v", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), timeout)
		}
	}
	return nil
}
