// Command testsummary reads `go test -json` on its standard input and
// prints what an operator of the test command needs: each package's result
// line, the whole output of every test that failed, and at the end every
// test that skipped with its reason (a test that needs root or a package
// says why). It exits 1 if anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	outputs := map[string][]string{} // package/test -> its output lines
	var skips []string
	failed := false
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			fmt.Println(sc.Text()) // not an event: a build error, say
			continue
		}
		key := ev.Package + " " + ev.Test
		switch ev.Action {
		case "build-output":
			fmt.Print(ev.Output)
		case "build-fail":
			failed = true
		case "output":
			if ev.Test == "" {
				if l := ev.Output; strings.HasPrefix(l, "ok") || strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "?") || strings.HasPrefix(l, "panic") || strings.HasPrefix(l, "skip:") {
					fmt.Print(l)
				}
				continue
			}
			outputs[key] = append(outputs[key], ev.Output)
		case "fail":
			failed = true
			if ev.Test != "" {
				fmt.Print(strings.Join(outputs[key], ""))
			}
		case "skip":
			if ev.Test != "" {
				skips = append(skips, fmt.Sprintf("%s %s: %s", ev.Package, ev.Test, reason(outputs[key])))
			}
		}
		if ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip" {
			delete(outputs, key)
		}
	}
	if len(skips) > 0 {
		sort.Strings(skips)
		fmt.Printf("\n%d test(s) skipped, and why:\n", len(skips))
		for _, s := range skips {
			fmt.Println("  " + s)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// reason is the message a test gave t.Skip: its last file:line line.
func reason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if _, msg, ok := strings.Cut(l, ".go:"); ok {
			if _, m, ok := strings.Cut(msg, ": "); ok {
				return m
			}
		}
	}
	return "(no reason given)"
}
