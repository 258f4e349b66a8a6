package config

import (
	"errors"
	"strings"
	"testing"
)

// The audit section: the trail's file, and the syslog socket records also
// go to when audit.syslog is true.
func TestAuditSyslog(t *testing.T) {
	base := "cluster: c\nstore: {type: file, path: st}\ncib: {port: 5403}\nnodes: [{name: n1}]\n"
	cases := []struct {
		name, audit  string
		path, syslog string
		problem      string
	}{
		{"defaults", "", "/var/log/pcmkeys/c.audit.jsonl", "", ""},
		{"syslog off", "audit: {syslog: false}\n", "/var/log/pcmkeys/c.audit.jsonl", "", ""},
		{"syslog on", "audit: {path: a.jsonl, syslog: true}\n", "/etc/pcmkeys/a.jsonl", "/dev/log", ""},
		{"another socket", "audit: {syslog: true, syslog_socket: /var/run/syslog}\n", "/var/log/pcmkeys/c.audit.jsonl", "/var/run/syslog", ""},
		{"socket relative to the config", "audit: {syslog: true, syslog_socket: run/log}\n", "/var/log/pcmkeys/c.audit.jsonl", "/etc/pcmkeys/run/log", ""},
		{"socket without syslog", "audit: {syslog_socket: /dev/log}\n", "", "", "line 5: audit.syslog_socket: applies with syslog: true"},
		{"socket with a newline", "audit: {syslog: true, syslog_socket: \"/dev/\\nlog\"}\n", "", "", "line 5: audit.syslog_socket: path contains a control character"},
		{"syslog not a bool", "audit: {syslog: yes please}\n", "", "", "line 5:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(base+tc.audit), "/etc/pcmkeys/pcmkeys.yaml")
			if tc.problem != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("error %v, want %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.AuditPath != tc.path || cfg.AuditSyslog != tc.syslog {
				t.Errorf("audit %q, syslog %q; want %q, %q", cfg.AuditPath, cfg.AuditSyslog, tc.path, tc.syslog)
			}
		})
	}
}
