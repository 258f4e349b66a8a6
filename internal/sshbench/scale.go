package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/quickack"
	"github.com/pcmkeys/pcmkeys/internal/sshbench/netem"
	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

type scaleOptions struct {
	hosts        []int
	runs         int
	delay        time.Duration // each way
	jobs         string
	ansibleForks int
	rttHosts     int
	storeCount   bool
	keep         bool
}

// cell is one job's median at one host count and delay.
type cell struct {
	res result
	rtt time.Duration // the link's round trip measured before the runs
}

// rtCount is what the capture and sshd's logs found for one job, at the
// first host (which holds the admins' client files) and at the others
// (the most any of them needed).
type rtCount struct {
	first, others hostCount
}

type hostCount struct {
	waits, conns, sessions, logins int
}

// most is the larger of the two: what bounds the job's wall time.
func (r rtCount) most() int { return max(r.first.waits, r.others.waits) }

func pair(a, b int, single bool) string {
	if single || a == b {
		return strconv.Itoa(a)
	}
	return fmt.Sprintf("%d / %d", a, b)
}

func benchScale(o scaleOptions) error {
	jobs := scaleJobs()
	if o.jobs != "" {
		want := strings.Split(o.jobs, ",")
		jobs = slices.DeleteFunc(jobs, func(j job) bool { return !slices.Contains(want, j.name) })
		if len(jobs) == 0 {
			return fmt.Errorf("-jobs %q names no job (see -list)", o.jobs)
		}
	}
	if err := scaleTools(o, jobs); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pcmkeys-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Printf("work directory kept: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	os.Chmod(dir, 0o755)
	e := &env{dir: dir, bin: filepath.Join(dir, "pcmkeys")}
	if out, err := exec.Command("go", "build", "-o", e.bin, "./cmd/pcmkeys").CombinedOutput(); err != nil {
		return fmt.Errorf("build pcmkeys (run from the repository's root): %v\n%s", err, out)
	}
	if e.link, err = netem.New(); err != nil {
		return err
	}
	defer e.link.Close()
	maxN := slices.Max(o.hosts)
	mem0 := memAvailable()
	t0 := time.Now()
	// VERBOSE: sshd logs each login and session, which the capture counts.
	if e.lab, err = sshlab.New(maxN, sshlab.Options{Netns: e.link.LabNetns, Address: netem.LabAddr, LogLevel: "VERBOSE"}); err != nil {
		return err
	}
	defer e.lab.Stop()
	fmt.Printf("lab: %d sshd hosts in %s, %.0f MB of the machine's memory\n", maxN, time.Since(t0).Round(time.Second), float64(mem0-memAvailable())/1024)
	payload := filepath.Join(dir, "payload")
	b := make([]byte, 4096)
	rand.Read(b)
	if err := os.WriteFile(payload, b, 0o644); err != nil {
		return err
	}
	printMachine()

	var rts map[string]rtCount
	if o.rttHosts > 0 && o.delay > 0 {
		if rts, err = countRoundTrips(e, o, jobs, payload); err != nil {
			return err
		}
	}
	for _, n := range o.hosts {
		c, err := newCluster(e, fmt.Sprintf("cluster-%d", n), n, o.ansibleForks, payload)
		if err != nil {
			return err
		}
		cells := map[string]map[time.Duration]cell{}
		delays := []time.Duration{0}
		if o.delay > 0 {
			delays = append(delays, o.delay)
		}
		for _, d := range delays {
			if err := e.link.SetDelay(d); err != nil {
				return err
			}
			rtt, err := e.link.ConnectRTT(net.JoinHostPort(netem.LabAddr, strconv.Itoa(c.hosts[0].Port)), 9)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%d hosts, %s each way: TCP connect %s\n", n, d, rtt.Round(10*time.Microsecond))
			runs := map[string][]result{}
			for run := 0; run < o.runs; run++ {
				for _, j := range jobs {
					r, err := runJob(e, c, j)
					if err != nil {
						return fmt.Errorf("%s on %d hosts, %s each way: %w", j.name, n, d, err)
					}
					fmt.Fprintf(os.Stderr, "  run %d %-9s %8s CPU %5.1f/%5.1fs %7.1f MB %5d fds; machine: +%.0f MB, %d processes (load %s)\n",
						run+1, j.name, r.wall.Round(time.Millisecond), r.client.Seconds(), r.cpu.Seconds(), float64(r.rss)/1024, r.fds,
						float64(r.machineMem)/1024, r.procs, load())
					runs[j.name] = append(runs[j.name], r)
				}
			}
			for _, j := range jobs {
				if cells[j.name] == nil {
					cells[j.name] = map[time.Duration]cell{}
				}
				cells[j.name][d] = cell{medianOf(runs[j.name]), rtt}
			}
		}
		if err := e.link.SetDelay(0); err != nil {
			return err
		}
		printTable(c, jobs, cells, delays, rts, o)
		if o.storeCount {
			if err := printStoreOps(e, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// runJob runs one job once: its setup, the timed command, its teardown.
func runJob(e *env, c *cluster, j job) (result, error) {
	if j.setup != nil {
		if err := j.setup(e, c); err != nil {
			return result{}, fmt.Errorf("setup: %w", err)
		}
	}
	r, err := measure(j.argv(e, c))
	if j.teardown != nil {
		if terr := j.teardown(e, c); terr != nil && err == nil {
			err = fmt.Errorf("teardown: %w", terr)
		}
	}
	return r, err
}

// countRoundTrips captures each job once, at the delay, on the first
// rttHosts hosts, and counts per host the round trips and what sshd
// logged.
func countRoundTrips(e *env, o scaleOptions, jobs []job, payload string) (map[string]rtCount, error) {
	c, err := newCluster(e, "rtt", o.rttHosts, o.ansibleForks, payload)
	if err != nil {
		return nil, err
	}
	if err := e.link.SetDelay(o.delay); err != nil {
		return nil, err
	}
	defer e.link.SetDelay(0)
	rtt, err := e.link.ConnectRTT(net.JoinHostPort(netem.LabAddr, strconv.Itoa(c.hosts[0].Port)), 9)
	if err != nil {
		return nil, err
	}
	plain, err := goSteps(e, c.hosts[0], nil)
	if err != nil {
		return nil, err
	}
	quick, err := goSteps(e, c.hosts[0], quickack.Wrap)
	if err != nil {
		return nil, err
	}
	fmt.Printf("\nRound trips at %s each way (TCP connect %s), one host, Go's SSH client, plain and with TCP_QUICKACK (what pcmkeys uses):\n", o.delay, rtt.Round(100*time.Microsecond))
	for i, s := range plain {
		fmt.Printf("  %-44s %8s = %4.1f round trips; quick ACKs: %8s = %4.1f\n", s.name, s.took.Round(100*time.Microsecond), float64(s.took)/float64(rtt),
			quick[i].took.Round(100*time.Microsecond), float64(quick[i].took)/float64(rtt))
	}
	out := map[string]rtCount{}
	fmt.Printf("\nPer host, in a capture of each job on %d hosts: round trips (the client waited for the server), connections;\n"+
		"sessions and logins from sshd's log. \"a / b\": host00 (which also holds the admins' client files) / the others\n", o.rttHosts)
	fmt.Printf("  %-44s %11s %11s %9s %7s %8s\n", "job", "round trips", "connections", "sessions", "logins", "wall")
	for _, j := range jobs {
		if j.setup != nil {
			if err := j.setup(e, c); err != nil {
				return nil, fmt.Errorf("%s: setup: %w", j.name, err)
			}
		}
		logs := make([]int, len(c.hosts))
		for i, h := range c.hosts {
			s, _ := h.Log()
			logs[i] = len(s)
		}
		var r result
		pkts, err := capture(e.link, filepath.Join(e.dir, j.name+".pcap"), func() error {
			var err error
			r, err = measure(j.argv(e, c))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", j.name, err)
		}
		if j.teardown != nil {
			if err := j.teardown(e, c); err != nil {
				return nil, fmt.Errorf("%s: teardown: %w", j.name, err)
			}
		}
		w, conns := waits(pkts, rtt*6/10), connections(pkts)
		var rc rtCount
		for i, h := range c.hosts {
			s, _ := h.Log()
			if len(s) > logs[i] {
				s = s[logs[i]:]
			} else {
				s = ""
			}
			hc := hostCount{w[h.Port], conns[h.Port], strings.Count(s, "Starting session:"), strings.Count(s, "Accepted publickey")}
			if i == 0 {
				rc.first = hc
				continue
			}
			rc.others = hostCount{max(rc.others.waits, hc.waits), max(rc.others.conns, hc.conns),
				max(rc.others.sessions, hc.sessions), max(rc.others.logins, hc.logins)}
		}
		out[j.name] = rc
		one := len(c.hosts) == 1
		fmt.Printf("  %-44s %11s %11s %9s %7s %8s\n", j.title, pair(rc.first.waits, rc.others.waits, one),
			pair(rc.first.conns, rc.others.conns, one), pair(rc.first.sessions, rc.others.sessions, one),
			pair(rc.first.logins, rc.others.logins, one), r.wall.Round(time.Millisecond))
	}
	return out, nil
}

// scaleTools says what -scale misses.
func scaleTools(o scaleOptions, jobs []job) error {
	if r := netem.SkipReason(); r != "" {
		return errors.New(r)
	}
	need := []string{"ssh", "xargs", "go"}
	if o.rttHosts > 0 && o.delay > 0 {
		need = append(need, "tcpdump")
	}
	if o.storeCount {
		need = append(need, "strace")
	}
	if slices.ContainsFunc(jobs, func(j job) bool { return j.name == "ansible" }) {
		need = append(need, "ansible-playbook")
	}
	for _, bin := range need {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install openssh-client tcpdump strace ansible-core)", bin)
		}
	}
	return nil
}

// printMachine says where the numbers come from.
func printMachine() {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	deb, _ := os.ReadFile("/etc/debian_version")
	ssh, _ := exec.Command("ssh", "-V").CombinedOutput()
	ans, _ := exec.Command("ansible-playbook", "--version").Output()
	fmt.Printf("machine: %d cores, %.0f GiB, Debian %s, kernel %s, %s, %s; %s; %s; load %s\n",
		runtime.NumCPU(), float64(memTotal())/(1<<20), strings.TrimSpace(string(deb)), strings.TrimSpace(string(kernel)),
		strings.Fields(string(ssh) + " ?")[0], strings.SplitN(string(ans)+"\n", "\n", 2)[0], runtime.Version(),
		time.Now().Format("2006-01-02 15:04"), load())
}

// load is the 1-minute load average.
func load() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Fields(string(b) + " ?")[0]
}

func memAvailable() int64 { return meminfo("MemAvailable:") }
func memTotal() int64     { return meminfo("MemTotal:") }

// meminfo reads one /proc/meminfo field, KB.
func meminfo(field string) int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}
