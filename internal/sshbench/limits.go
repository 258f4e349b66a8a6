package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/internal/sshbench/netem"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// benchLimits starts n lab hosts — sharing one network namespace behind
// the link, or each with a network of its own (OwnNetwork, reached
// through a forwarder on the machine's loopback) — and prints what they
// cost: time, memory, processes, open files, mounts; then logs in to each
// once, 100 at a time, and stops them.
func benchLimits(n int, ownNet bool) error {
	mem0, procs0 := memAvailable(), countProcs()
	opts := sshlab.Options{}
	var link *netem.Link
	if !ownNet {
		var err error
		if link, err = netem.New(); err != nil {
			return err
		}
		defer link.Close()
		opts = sshlab.Options{Netns: link.LabNetns, Address: netem.LabAddr}
	}
	t0 := time.Now()
	lab, err := sshlab.New(n, opts)
	if err != nil {
		return err
	}
	started := time.Since(t0)
	stopped := false
	defer func() {
		if !stopped {
			lab.Stop()
		}
	}()
	time.Sleep(2 * time.Second) // let the page cache and slabs settle
	var pss int64
	for _, h := range lab.Hosts {
		pss += smapsPss(h.PID())
	}
	mounts, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", lab.Hosts[0].PID()))
	kind := "sharing one network namespace"
	if ownNet {
		kind = "each with its own network namespace"
	}
	fmt.Printf("%d hosts %s: started in %s (16 at a time)\n", n, kind, started.Round(100*time.Millisecond))
	fmt.Printf("  machine memory: %.0f MB (MemAvailable before %.0f MB, after %.0f MB)\n",
		float64(mem0-memAvailable())/1024, float64(mem0)/1024, float64(memAvailable())/1024)
	fmt.Printf("  the hosts' own processes: PSS %.0f MB in all, %.2f MB each\n", float64(pss)/1024, float64(pss)/1024/float64(n))
	fmt.Printf("  processes: %d more (pid_max %s, threads-max %s)\n", countProcs()-procs0, sysctl("kernel/pid_max"), sysctl("kernel/threads-max"))
	fmt.Printf("  this process's open files: %d (RLIMIT_NOFILE above); mounts in one host: %d\n", openFiles(os.Getpid()), strings.Count(string(mounts), "\n"))

	// One login per host, 100 at a time.
	pem, err := os.ReadFile(lab.IdentityFile)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return err
	}
	hk, err := knownhosts.New(lab.KnownHosts)
	if err != nil {
		return err
	}
	var ok atomic.Int64
	t1 := time.Now()
	login := func(ctx context.Context, h *sshlab.Host) error {
		addr := net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
		var conn net.Conn
		dial := func() error {
			var err error
			conn, err = net.DialTimeout("tcp", addr, 30*time.Second)
			return err
		}
		var err error
		if link != nil {
			err = sshlab.InNetns(link.ClientNetns, dial)
		} else {
			err = dial()
		}
		if err != nil {
			return err
		}
		cc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk})
		if err != nil {
			conn.Close()
			return err
		}
		c := ssh.NewClient(cc, chans, reqs)
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			return err
		}
		defer s.Close()
		if err := s.Run("true"); err != nil {
			return err
		}
		ok.Add(1)
		return nil
	}
	errs := distribute.Each(context.Background(), lab.Hosts, 100, login)
	var first error
	for _, err := range errs {
		if err != nil && first == nil {
			first = err
		}
	}
	fmt.Printf("  logins: %d of %d hosts answered, 100 at a time, in %s\n", ok.Load(), n, time.Since(t1).Round(100*time.Millisecond))
	t2 := time.Now()
	lab.Stop()
	stopped = true
	fmt.Printf("  stopped in %s\n", time.Since(t2).Round(100*time.Millisecond))
	if first != nil {
		return fmt.Errorf("a login failed: %w", first)
	}
	return nil
}

// smapsPss is the proportional set size of pid, KB.
func smapsPss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func countProcs() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}

func sysctl(name string) string {
	b, _ := os.ReadFile("/proc/sys/" + name)
	return strings.TrimSpace(string(b))
}
