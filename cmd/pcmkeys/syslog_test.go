package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/testroot"
)

// TestAuditSyslog: with audit.syslog on, every workflow's record reaches
// the syslog socket as one line (authpriv, tag pcmkeys, the record's JSON),
// and a socket nobody listens on fails the run instead of losing the record.
func TestAuditSyslog(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	root := testroot.New(t)
	cfg := filepath.Join(dir, "pcmkeys.yaml")
	doc := fmt.Sprintf(`cluster: quickstart
store: {type: file, path: %s/store}
audit: {path: %s/audit.jsonl, syslog: true, syslog_socket: %s}
identity_mode: per-user
cib: {server: localhost, port: 5403}
nodes:
  - {name: localhost, local: true, root: %s}
`, dir, dir, sock, root.Dir)
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, step := range [][]string{{"init"}, {"onboard", "alice", "--client", "localhost"}} {
		if code, out, errOut := cli(t, false, append([]string{"--config", cfg}, step...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", step, code, out, errOut)
		}
		buf := make([]byte, 64<<10)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("%v: no syslog message: %v", step, err)
		}
		msg := string(buf[:n])
		// <86> is authpriv.info; the message is the record's JSON.
		head, body, ok := strings.Cut(msg, ": {")
		if !ok || !strings.HasPrefix(head, "<86>") || !strings.Contains(head, "pcmkeys[") {
			t.Fatalf("%v: syslog message %q", step, msg)
		}
		var rec struct {
			Action, Result string
		}
		if err := json.Unmarshal([]byte("{"+strings.TrimSpace(body)), &rec); err != nil || rec.Action != step[0] || rec.Result != "ok" {
			t.Errorf("%v: record %+v %v in %q", step, rec, err, msg)
		}
	}
	conn.Close()
	os.Remove(sock)
	code, _, errOut := cli(t, false, "--config", cfg, "push")
	if code == 0 || !strings.Contains(errOut, "syslog") {
		t.Errorf("push with nobody on the syslog socket: exit %d, %s", code, errOut)
	}
}
