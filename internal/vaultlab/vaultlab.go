// Package vaultlab starts a real Vault server for tests: the vaultdev
// command (internal/vaultdev, Vault 1.21.4's own core built from its Go
// module), on a loopback port, unsealed, with a root token.
//
// The binary is built once into the user's cache directory
// ($XDG_CACHE_HOME/pcmkeys, ~/.cache/pcmkeys), named by a hash of the
// vaultdev module's files, so a warm cache costs nothing and a cold one
// (about 8 minutes and 2 GB of module cache on 2 cores) is paid once per
// machine. Concurrent test processes wait for each other's build.
//
// Setting PCMKEYS_SKIP_VAULT=1 skips the tests that need Vault, with that
// reason; CI never sets it.
package vaultlab

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/sys/unix"
)

// Server is a running vaultdev.
type Server struct {
	Addr       string   `json:"addr"`
	RootToken  string   `json:"root_token"`
	UnsealKeys []string `json:"unseal_keys"`

	cmd   *exec.Cmd
	stdin io.WriteCloser
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// SkipReason is why Vault tests skip, or "" when they run.
func SkipReason() string {
	if os.Getenv("PCMKEYS_SKIP_VAULT") != "" {
		return "PCMKEYS_SKIP_VAULT is set: skipping the tests that need a real Vault"
	}
	return ""
}

// Start starts a new server, stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if r := SkipReason(); r != "" {
		t.Skip(r)
	}
	s, err := Launch()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch builds (once per process) and starts a server; the caller stops
// it. For a TestMain that shares one server among a package's tests.
func Launch() (*Server, error) {
	buildOnce.Do(func() { binPath, buildErr = build() })
	if buildErr != nil {
		return nil, fmt.Errorf("build vaultdev: %w", buildErr)
	}
	s, err := start(binPath)
	if err != nil {
		return nil, fmt.Errorf("start vaultdev: %w", err)
	}
	return s, nil
}

// Main runs a test package's tests with one server shared by all of them,
// stored in *srv (left nil, with the reason printed, when Vault tests are
// skipped). Call it from TestMain.
func Main(m *testing.M, srv **Server) {
	if r := SkipReason(); r != "" {
		fmt.Println("skip:", r)
		os.Exit(m.Run())
	}
	s, err := Launch()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*srv = s
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

// Stop ends the server: closing its stdin tells it to exit.
func (s *Server) Stop() {
	s.stdin.Close()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// Client returns a client for the server holding the root token.
func (s *Server) Client(t testing.TB) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = s.Addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(s.RootToken)
	c.SetNamespace("")
	return c
}

// CountingProxy starts a reverse proxy in front of the server, closed when
// the test ends, and returns its address and a function that says how
// many requests have passed through it so far: a store opened on the
// address makes every request through it, so a test counts what the
// store asks of Vault without a hook in the store.
func (s *Server) CountingProxy(t testing.TB) (addr string, count func() int64) {
	t.Helper()
	target, err := url.Parse(s.Addr)
	if err != nil {
		t.Fatalf("vault address %q: %v", s.Addr, err)
	}
	var n atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, n.Load
}

// AwaitTokenExpiry returns once the server no longer knows token: its TTL
// ran out and Vault revoked it (a lookup answers "bad token"). It fails
// the test if that takes more than a minute or the lookup fails otherwise.
func (s *Server) AwaitTokenExpiry(t testing.TB, token string) {
	t.Helper()
	c := s.Client(t)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for {
		_, err := c.Auth().Token().Lookup(token)
		var re *vault.ResponseError
		switch {
		case errors.As(err, &re) && re.StatusCode == 403:
			return
		case err != nil:
			t.Fatalf("look up the token: %v", err)
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the token did not expire within a minute")
		}
	}
}

// MountKV2 mounts a new KV version 2 engine at a random path and returns
// the path.
func (s *Server) MountKV2(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	path := "kv-" + hex.EncodeToString(b)
	err := s.Client(t).Sys().Mount(path, &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
	if err != nil {
		t.Fatalf("mount kv v2 at %s: %v", path, err)
	}
	return path
}

func start(bin string) (*Server, error) {
	cmd := exec.Command(bin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{cmd: cmd, stdin: stdin}
	line := make(chan error, 1)
	go func() {
		l, err := bufio.NewReader(stdout).ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(l, s)
		}
		line <- err
		io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-line:
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("read its address: %w", err)
		}
	case <-time.After(2 * time.Minute):
		s.Stop()
		return nil, fmt.Errorf("it did not report an address within 2 minutes")
	}
	return s, nil
}

// Build compiles the test Vault into the cache (see build) and returns
// its path: for a visible step before the tests.
func Build() (string, error) {
	buildOnce.Do(func() { binPath, buildErr = build() })
	return binPath, buildErr
}

// build compiles internal/vaultdev into the cache, unless a binary for the
// same sources is there.
func build() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "vaultdev")
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	h.Write([]byte(runtime.Version()))
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "pcmkeys")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "vaultdev-"+hex.EncodeToString(h.Sum(nil))[:16])
	lock, err := os.OpenFile(filepath.Join(dir, "vaultdev.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build in %s: %v\n%s", src, err, tail(string(out), 40))
	}
	return bin, os.Rename(tmp, bin)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
