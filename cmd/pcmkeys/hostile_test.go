package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/config"
)

// corpus reads a file of Go-quoted strings, one per line ('#' lines are
// comments).
func corpus(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("../../testdata/hostile", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := strconv.Unquote(line)
		if err != nil {
			t.Fatalf("%s: %q: %v", name, line, err)
		}
		out = append(out, s)
	}
	return out
}

// hostileCluster is an initialised quickstart-like cluster; snapshot
// lists its host root and store.
func hostileCluster(t *testing.T) (cfg string, snapshot func() string) {
	t.Helper()
	cfg, root := quickstart(t, "per-user")
	if code, _, stderr := cli(t, false, "--config", cfg, "init"); code != 0 {
		t.Fatal(stderr)
	}
	return cfg, func() string {
		var b strings.Builder
		for _, dir := range []string{root.Dir, filepath.Join(filepath.Dir(cfg), "store")} {
			filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
				switch {
				case err != nil || fi.Name() == "lock" || fi.Name() == "lock.json": // the lock is not data
				case fi.IsDir():
					fmt.Fprintf(&b, "%s %v\n", p, fi.Mode())
				default:
					fmt.Fprintf(&b, "%s %v %d %d\n", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
				}
				return nil
			})
		}
		return b.String()
	}
}

// TestHostileNames: every bad name in the corpus is refused by onboard,
// rotate and revoke with exit 2 and a specific message, and nothing is
// written.
func TestHostileNames(t *testing.T) {
	cfg, snapshot := hostileCluster(t)
	before := snapshot()
	for _, name := range corpus(t, "names.txt") {
		for _, args := range [][]string{{"onboard", name, "--client", "localhost"}, {"rotate", name}, {"revoke", name}} {
			code, out, stderr := cli(t, false, append([]string{"--config", cfg}, args...)...)
			if code != 2 || out != "" {
				t.Errorf("%s %q: exit %d, stdout %q", args[0], name, code, out)
			}
			// Every name in the corpus is malformed: name validation must
			// refuse it ("not an admin" would mean it reached the store).
			if !strings.Contains(stderr, "invalid name") {
				t.Errorf("%s %q: unspecific error %q", args[0], name, stderr)
			}
		}
	}
	if after := snapshot(); after != before {
		t.Errorf("a refused name changed something:\n%s\n---\n%s", before, after)
	}
}

// TestHostilePaths: every bad --key-file is refused with exit 2 and
// nothing is written.
func TestHostilePaths(t *testing.T) {
	cfg, snapshot := hostileCluster(t)
	before := snapshot()
	for _, p := range corpus(t, "paths.txt") {
		code, _, stderr := cli(t, false, "--config", cfg, "onboard", "alice", "--client", "localhost", "--key-file", p)
		if code != 2 || !strings.Contains(stderr, "invalid path") {
			t.Errorf("--key-file %q: exit %d: %s", p, code, stderr)
		}
	}
	if after := snapshot(); after != before {
		t.Errorf("a refused path changed something:\n%s\n---\n%s", before, after)
	}
}

// TestHostileConfigs: each config in the corpus is refused with the
// message its first line wants; and a huge one is refused by size.
func TestHostileConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/hostile/configs/*.yaml")
	if len(files) < 5 {
		t.Fatalf("corpus has %d configs", len(files))
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		want := strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "# want: ")
		code, _, stderr := cli(t, false, "--config", f, "status")
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", filepath.Base(f), code, stderr, want)
		}
	}
	huge := filepath.Join(t.TempDir(), "huge.yaml")
	os.WriteFile(huge, []byte("cluster: c\n"+strings.Repeat("# padding\n", config.MaxConfigBytes/10+1)), 0o600)
	if code, _, stderr := cli(t, false, "--config", huge, "status"); code != 2 || !strings.Contains(stderr, "larger than") {
		t.Errorf("huge config: exit %d: %s", code, stderr)
	}
	var ce *config.Error
	if _, err := config.Load(huge); !errors.As(err, &ce) {
		t.Errorf("huge config error type: %v", err)
	}
}
