package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPolicyVault(t *testing.T) {
	code, out, stderr := cli(t, false, "policy", "vault", "--role", "auditor", "--mount", "secret", "--prefix", "pcmkeys/prod")
	if code != 0 || !strings.Contains(out, `path "secret/metadata/pcmkeys/prod/*"`) || strings.Contains(out, `secret/data/pcmkeys/prod/cib`) {
		t.Fatalf("auditor policy: %d %s\n%s", code, stderr, out)
	}
	code, out, _ = cli(t, false, "policy", "vault", "--role", "admin", "--mount", "secret", "--prefix", "p", "-o", "json")
	var res map[string]string
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res["role"] != "admin" || !strings.Contains(res["policy"], "secret/destroy/p/cib/*") {
		t.Errorf("json: %d %v %q", code, err, out)
	}
	bad := []struct {
		args []string
		msg  string
	}{
		{[]string{"policy", "vault", "--mount", "secret", "--prefix", "p"}, "--role is required"},
		{[]string{"policy", "vault", "--role", "root", "--mount", "secret", "--prefix", "p"}, "unknown vault role"},
		{[]string{"policy", "vault", "--role", "admin", "--user", "alice", "--mount", "secret", "--prefix", "p"}, "--user goes with --role self"},
		{[]string{"policy", "vault", "--role", "self", "--mount", "secret", "--prefix", "p"}, "--user goes with --role self"},
		{[]string{"--config", "../../testdata/quickstart/pcmkeys.yaml", "policy", "vault", "--role", "admin"}, "store is not vault"},
		{[]string{"policy", "vault", "--role", "admin", "--mount", "secret", "--prefix", "p/*"}, "cannot be used in a policy path"},
	}
	for _, tc := range bad {
		code, out, stderr := cli(t, false, tc.args...)
		if code != 2 || out != "" || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, stderr, tc.msg)
		}
	}
}
