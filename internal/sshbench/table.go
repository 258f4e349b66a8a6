package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/distribute"
)

// printTable prints one host count's table: each job's median wall time
// locally and at the delay, as a multiple of the floor and of OpenSSH's
// one-shot write measured in the same runs, and CPU time: the job's own
// processes' (the client's) and the whole machine's meanwhile (the lab's
// sshd too; over the cores, either is a floor as well); the round
// trips per host the capture counted and the wall time they imply at the
// measured RTT; peak RSS and (pcmkeys) peak open files.
func printTable(c *cluster, jobs []job, cells map[string]map[time.Duration]cell, delays []time.Duration, rts map[string]rtCount, o scaleOptions) {
	fmt.Printf("\n%d hosts (medians of %d; Ansible forks %d; pcmkeys's default --parallel %d)\n", c.n, o.runs, c.forks, distribute.DefaultParallel)
	head := fmt.Sprintf("%-44s", "job")
	for _, d := range delays {
		head += fmt.Sprintf(" | %-38s", where(d, cells, jobs))
	}
	if rts != nil {
		head += fmt.Sprintf(" | %-16s", "round trips")
	}
	fmt.Println(head + " | peak RSS |  fds")
	sub := fmt.Sprintf("%-44s", "")
	for range delays {
		sub += fmt.Sprintf(" | %8s %6s %6s %14s", "wall", "×floor", "×ssh", "CPU client/all")
	}
	if rts != nil {
		sub += fmt.Sprintf(" | %5s %10s", "/host", "min wall")
	}
	fmt.Println(sub + " |          |")
	for _, j := range jobs {
		line := fmt.Sprintf("%-44s", j.title)
		var rss int64
		var fds int
		for _, d := range delays {
			r := cells[j.name][d].res
			rss, fds = max(rss, r.rss), max(fds, r.fds)
			line += fmt.Sprintf(" | %8s %6s %6s %14s", r.wall.Round(10*time.Millisecond), ratio(r.wall, cells["floor"][d].res.wall),
				ratio(r.wall, cells["ssh"][d].res.wall), fmt.Sprintf("%.1f/%.1fs", r.client.Seconds(), r.cpu.Seconds()))
		}
		if rts != nil {
			if rc, ok := rts[j.name]; ok && len(delays) > 1 {
				d := delays[len(delays)-1]
				waves := (c.n + j.parallel(c) - 1) / j.parallel(c)
				min := time.Duration(rc.most()*waves) * cells[j.name][d].rtt
				line += fmt.Sprintf(" | %5d %10s", rc.most(), min.Round(10*time.Millisecond))
			} else {
				line += fmt.Sprintf(" | %5s %10s", "-", "-")
			}
		}
		f := "   -"
		if j.pcmkeys {
			f = fmt.Sprintf("%4d", fds)
		}
		fmt.Printf("%s | %5.1f MB | %s\n", line, float64(rss)/1024, f)
	}
	var mem int64
	var procs int
	var which string
	for _, j := range jobs {
		for _, d := range delays {
			r := cells[j.name][d].res
			if r.machineMem > mem {
				mem, which = r.machineMem, j.name
			}
			procs = max(procs, r.procs)
		}
	}
	fmt.Printf("the machine at the peak of any job: %.0f MB more memory in use (%s), %d processes (pid_max %s)\n",
		float64(mem)/1024, which, procs, sysctl("kernel/pid_max"))
}

// where names a column: local, or the delay with the RTT measured.
func where(d time.Duration, cells map[string]map[time.Duration]cell, jobs []job) string {
	rtt := cells[jobs[0].name][d].rtt
	if d == 0 {
		return fmt.Sprintf("local (RTT %s)", rtt.Round(10*time.Microsecond))
	}
	return fmt.Sprintf("%s each way (RTT %s)", d, rtt.Round(100*time.Microsecond))
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// printStoreOps counts, with strace, the file store's file operations
// of one rotate and one revoke: the store's requests, which must not
// grow with the host count.
func printStoreOps(e *env, c *cluster) error {
	store := filepath.Join(c.dir, "store")
	for _, args := range [][]string{{"rotate", "--cib"}, {"revoke", "alice"}} {
		if err := c.admit(e, "alice", "bob"); err != nil {
			return err
		}
		trace := filepath.Join(e.dir, "strace.out")
		argv := append([]string{"strace", "-f", "--seccomp-bpf", "-qq", "-o", trace,
			"-e", "trace=open,openat,openat2,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat",
			e.bin, "--config", c.cfg, "--parallel", fmt.Sprint(c.n)}, args...)
		if err := quiet(e.link.Argv(argv...)); err != nil {
			return err
		}
		if args[0] == "revoke" {
			delete(c.admins, "alice")
		}
		b, err := os.ReadFile(trace)
		if err != nil {
			return err
		}
		counts, files := map[string]int{}, map[string]int{}
		total := 0
		for _, line := range strings.Split(string(b), "\n") {
			i := strings.Index(line, store+"/")
			if i < 0 {
				continue
			}
			_, call, _ := strings.Cut(line, " ")
			call, _, _ = strings.Cut(strings.TrimSpace(call), "(")
			name, _, _ := strings.Cut(line[i+len(store)+1:], `"`)
			counts[call]++
			files[name]++
			total++
		}
		fmt.Printf("store requests, %s on %d hosts: %d file operations on the store (%s; by file: %s)\n",
			strings.Join(args, " "), c.n, total, tally(counts), tally(files))
	}
	return nil
}

// tally is "k n, k n" in the keys' order.
func tally(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
