package pcmklab

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// passwords are the passwords SetPassword set, per host and user: a client
// whose env file sets no CIB_passwd gets the one of its CIB_user.
var passwords sync.Map // passwordKey → string

type passwordKey struct {
	host *sshlab.Host
	user string
}

var userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)

// SetPassword sets user's password in host's private /etc/shadow (chpasswd,
// through a pipe) and remembers it for the clients [Run] starts on host.
func SetPassword(t testing.TB, host *sshlab.Host, user, password string) {
	t.Helper()
	if !userName.MatchString(user) || strings.ContainsAny(password, ":\n") {
		t.Fatalf("SetPassword: bad user %q or password", user)
	}
	cmd, err := host.Command(t.Context(), "chpasswd")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(user + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd on %s: %v: %s", host.Name, err, out)
	}
	passwords.Store(passwordKey{host, user}, password)
}

// clientScript runs as the admin: it sources the admin's env file as the
// admin's shell would, supplies CIB_passwd from the lab when the file sets
// none, and execs the client.
const clientScript = `env_file=$1; shift
. "$env_file" || exit 1
if [ -z "${CIB_passwd+x}" ]; then
	case "$CIB_user" in
	*[!a-z0-9_]* | "") ;;
	*) eval "CIB_passwd=\${PCMKLAB_PASSWD_$CIB_user-}"; export CIB_passwd ;;
	esac
fi
for v in $(env | sed -n 's/^\(PCMKLAB_PASSWD_[a-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
exec "$@"`

// clientCommand prepares prog (one of the peer's programs) to run on host
// as the OS user user with the environment of envFile (a path on host).
func clientCommand(ctx context.Context, t testing.TB, host *sshlab.Host, user, envFile string, prog string, args ...string) *exec.Cmd {
	t.Helper()
	Require(t)
	prepare(t, host)
	if !userName.MatchString(user) {
		t.Fatalf("bad user %q", user)
	}
	argv := append([]string{"--reuid=" + user, "--regid=" + user, "--init-groups", "--", "sh", "-c", clientScript, "sh", envFile, bin(prog)}, args...)
	cmd, err := host.Command(ctx, "setpriv", argv...)
	if err != nil {
		t.Fatal(err)
	}
	home := "/home/" + user
	switch user {
	case "root":
		home = "/root"
	case "hacluster":
		home = "/var/lib/pacemaker"
	}
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "USER=" + user, "LOGNAME=" + user, "LANG=C"}
	passwords.Range(func(k, v any) bool {
		if pk := k.(passwordKey); pk.host == host && !strings.Contains(pk.user, "-") {
			env = append(env, "PCMKLAB_PASSWD_"+pk.user+"="+v.(string))
		}
		return true
	})
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// Run runs one of the peer's client programs (cibadmin, crm_mon, …, by
// name) on host as the OS user user, with the environment from envFile (a
// path on host: the env file pcmkeys writes for an admin), and returns its
// combined output. A client gets CIB_passwd from the env file, else the
// password [SetPassword] set for its CIB_user. It is killed after a minute.
func Run(t testing.TB, host *sshlab.Host, user, envFile, prog string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := clientCommand(ctx, t, host, user, envFile, prog, args...).CombinedOutput()
	return string(out), err
}

// Cibadmin runs the real 3.0.2 `cibadmin -Q` on host as user with envFile's
// environment: a nil error means the admin reached the CIB over TLS-PSK
// and passed the PAM login, and the output is the CIB.
func Cibadmin(t testing.TB, host *sshlab.Host, user, envFile string) (string, error) {
	t.Helper()
	return Run(t, host, user, envFile, "cibadmin", "-Q")
}

// Session is a live remote-CIB session: the real 3.0.2 crm_mon in update
// mode, connected as an admin and kept open until the test ends.
type Session struct {
	host   *sshlab.Host
	port   int // based's port
	local  int // the session's own port
	cmd    *exec.Cmd
	exited chan struct{}
}

// HoldSession starts crm_mon on host as user with envFile's environment
// and returns when it holds an authenticated session with the CIB (its
// output shows the CIB), or fails the test after 30 s. crm_mon reconnects
// by itself only after an hour, so a session that [Session.Connected] no
// longer sees stays gone.
func HoldSession(t testing.TB, host *sshlab.Host, user, envFile string) *Session {
	t.Helper()
	out := fmt.Sprintf("/run/pcmklab/crm_mon-%s-%d.xml", user, time.Now().UnixNano())
	if o, err := host.Exec(t.Context(), `: > "$1" && chown "$2" "$1"`, out, user); err != nil {
		t.Fatalf("%v: %s", err, o)
	}
	cmd := clientCommand(context.Background(), t, host, user, envFile, "crm_mon",
		"--interval=3600s", "--output-as=xml", "--output-to="+out)
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Session{host: host, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Process.Kill()
		<-s.exited
	})
	env, err := host.Exec(t.Context(), `. "$1" && echo "$CIB_port"`, envFile)
	if s.port, err = strconv.Atoi(strings.TrimSpace(env)); err != nil {
		t.Fatalf("CIB_port from %s on %s: %q", envFile, host.Name, env)
	}
	var xml string
	err = waitFor(30*time.Second, 200*time.Millisecond, s.exited, func() bool {
		xml, _ = host.Exec(t.Context(), `cat "$1"`, out)
		if strings.Contains(xml, "<summary") {
			s.local = s.find(t)
		}
		return s.local != 0
	})
	switch {
	case errors.Is(err, errExited):
		t.Fatalf("crm_mon as %s on %s ended: %s", user, host.Name, stderr.String())
	case err != nil:
		t.Fatalf("crm_mon as %s on %s holds no CIB session after 30s: %s\n%s", user, host.Name, stderr.String(), xml)
	}
	return s
}

// find returns the local port of crm_mon's established connection to
// based, or 0.
func (s *Session) find(t testing.TB) int {
	out, _ := s.host.Exec(context.Background(), `ss -Htnp state established "( dport = :$1 )"`, strconv.Itoa(s.port))
	pid := "pid=" + strconv.Itoa(s.cmd.Process.Pid) + ","
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, pid) {
			continue
		}
		f := strings.Fields(line) // Recv-Q Send-Q Local Peer Process
		if len(f) < 4 {
			continue
		}
		if i := strings.LastIndexByte(f[2], ':'); i >= 0 {
			if p, err := strconv.Atoi(f[2][i+1:]); err == nil {
				return p
			}
		}
	}
	return 0
}

// Connected reports whether the session's TCP connection to based is
// still established (a reconnection would be another session).
func (s *Session) Connected() bool {
	out, _ := s.host.Exec(context.Background(), `ss -Htn state established "( sport = :$1 and dport = :$2 )"`,
		strconv.Itoa(s.local), strconv.Itoa(s.port))
	return strings.TrimSpace(out) != ""
}

// WaitDisconnected waits up to timeout for the session to be gone.
func (s *Session) WaitDisconnected(timeout time.Duration) bool {
	return waitFor(timeout, 100*time.Millisecond, nil, func() bool { return !s.Connected() }) == nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
