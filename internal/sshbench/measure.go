package main

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sampleRSS turns memory sampling on.
var sampleRSS = true

// result is one measured run of a job.
type result struct {
	wall time.Duration
	rss  int64         // peak total RSS of the process tree, KB
	fds  int           // peak open files of the job's own process
	cpu  time.Duration // CPU time the whole machine spent while it ran (all cores)
	// client is the CPU time of the job's own processes (user and system,
	// with the children it waited for: xargs's ssh, not the lab's sshd).
	client time.Duration
	// machineMem is how much more of the machine's memory was in use at
	// the peak than before the job (KB, MemAvailable); procs the most
	// processes the machine had.
	machineMem int64
	procs      int
}

// median runs argv runs times and returns the median wall time, peak RSS
// and peak fds (each its own median).
func median(runs int, argv []string) (result, error) {
	var rs []result
	for i := 0; i < runs; i++ {
		r, err := measure(argv)
		if err != nil {
			return result{}, err
		}
		rs = append(rs, r)
	}
	return medianOf(rs), nil
}

// medianOf is the median of each field on its own.
func medianOf(rs []result) result {
	if len(rs) == 0 {
		return result{}
	}
	walls := make([]time.Duration, len(rs))
	rsss := make([]int64, len(rs))
	fds := make([]int, len(rs))
	cpus := make([]time.Duration, len(rs))
	clients := make([]time.Duration, len(rs))
	for i, r := range rs {
		walls[i], rsss[i], fds[i], cpus[i], clients[i] = r.wall, r.rss, r.fds, r.cpu, r.client
	}
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	sort.Slice(rsss, func(i, j int) bool { return rsss[i] < rsss[j] })
	sort.Ints(fds)
	sort.Slice(cpus, func(i, j int) bool { return cpus[i] < cpus[j] })
	sort.Slice(clients, func(i, j int) bool { return clients[i] < clients[j] })
	m := len(rs) / 2
	return result{wall: walls[m], rss: rsss[m], fds: fds[m], cpu: cpus[m], client: clients[m], machineMem: maxOf(rs, func(r result) int64 { return r.machineMem }), procs: int(maxOf(rs, func(r result) int64 { return int64(r.procs) }))}
}

// measure runs argv and samples the total RSS of its process tree and the
// open files of its first process (every 20 ms, less often when a sample
// of a big tree costs more than a fifth of that: sampling must not become
// the load it measures).
func measure(argv []string) (result, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cpu0, mem0 := machineCPU(), memAvailable()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	var peak result
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sampleRSS {
			t0 := time.Now()
			r := treeRSS(cmd.Process.Pid)
			n := openFiles(cmd.Process.Pid)
			used, procs := mem0-memAvailable(), countProcs()
			mu.Lock()
			peak.rss = max(peak.rss, r)
			peak.fds = max(peak.fds, n)
			peak.machineMem = max(peak.machineMem, used)
			peak.procs = max(peak.procs, procs)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(max(20*time.Millisecond, 5*time.Since(t0))):
			}
		}
	}()
	err := cmd.Wait()
	wall := time.Since(start)
	cpu := machineCPU() - cpu0
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	peak.wall, peak.cpu = wall, cpu
	if ps := cmd.ProcessState; ps != nil {
		peak.client = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		s := out.String()
		if len(s) > 4000 {
			s = "…" + s[len(s)-4000:]
		}
		err = fmt.Errorf("%w\n%s", err, s)
	}
	return peak, err
}

// openFiles counts the open file descriptors of pid.
func openFiles(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// treeRSS sums VmRSS (KB) over pid and its descendants, found through
// /proc/PID/task/*/children, so a sample reads only the job's processes.
func treeRSS(root int) int64 {
	var total int64
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		p := "/proc/" + strconv.Itoa(pid)
		if b, err := os.ReadFile(p + "/status"); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
					kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
					total += kb
				}
			}
		}
		tasks, _ := os.ReadDir(p + "/task")
		for _, t := range tasks {
			b, err := os.ReadFile(p + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			for _, c := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(c); err == nil {
					queue = append(queue, n)
				}
			}
		}
	}
	return total
}

// machineCPU is the CPU time all cores have spent busy since boot
// (/proc/stat: user, nice, system, irq, softirq). Across a job it counts
// the lab's sshd as well as the client, and whatever else the machine
// ran meanwhile: a job cannot take less wall time than its CPU time over
// the cores.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7} { // user nice system (idle iowait) irq softirq
		if i < len(f) {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// maxOf is the largest f(r) over rs.
func maxOf(rs []result, f func(result) int64) int64 {
	var m int64
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
}
