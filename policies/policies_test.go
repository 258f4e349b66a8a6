package policies

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/keys"
)

func TestValidateNames(t *testing.T) {
	cases := []struct {
		name        string
		in          string
		ident, user bool
		host        bool
	}{
		{"plain", "alice", true, true, true},
		{"hacluster", "hacluster", true, true, true},
		{"with dash dot underscore", "a_b.c-d", true, true, true},
		{"leading underscore", "_svc", true, true, false},
		{"digit first", "1abc", true, false, true},
		{"empty", "", false, false, false},
		{"colon", "a:b", false, false, false},
		{"newline", "a\nb", false, false, false},
		{"cr", "a\rb", false, false, false},
		{"nul", "a\x00b", false, false, false},
		{"tab", "a\tb", false, false, false},
		{"space", "a b", false, false, false},
		{"leading hash", "#alice", false, false, false},
		{"slash", "a/b", false, false, false},
		{"dotdot", "..", false, false, false},
		{"non-ascii", "älice", false, false, false},
		{"invalid utf8", "a\xffb", false, false, false},
		{"del", "a\x7fb", false, false, false},
		{"long 33", strings.Repeat("a", 33), true, false, true},
		{"long 65", strings.Repeat("a", 65), false, false, true},
		{"very long", strings.Repeat("a", 10000), false, false, false},
		{"plus", "a+b", false, false, false},
		{"star", "a*", false, false, false},
		{"at", "a@b", true, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				what string
				f    func(string) error
				ok   bool
			}{{"identity", ValidateIdentity, tc.ident}, {"user", ValidateUser, tc.user}, {"host", ValidateHost, tc.host}} {
				err := c.f(tc.in)
				if (err == nil) != c.ok {
					t.Errorf("%s(%q) = %v, want ok=%v", c.what, tc.in, err, c.ok)
				}
				if err != nil && !errors.Is(err, ErrBadName) {
					t.Errorf("%s error does not wrap ErrBadName: %v", c.what, err)
				}
				if err != nil && len(err.Error()) > 300 {
					t.Errorf("%s error is %d bytes long", c.what, len(err.Error()))
				}
			}
		})
	}
}

func TestCheckMode(t *testing.T) {
	for _, m := range []fs.FileMode{0o600, 0o400} {
		if err := CheckMode(m); err != nil {
			t.Errorf("CheckMode(%o) = %v", m, err)
		}
	}
	for _, m := range []fs.FileMode{0o640, 0o604, 0o644, 0o660, 0o700 | 0o070, 0o200, 0o000, 0o600 | fs.ModeSetuid, 0o600 | fs.ModeSticky} {
		if err := CheckMode(m); !errors.Is(err, ErrUnsafeMode) {
			t.Errorf("CheckMode(%v) = %v, want ErrUnsafeMode", m, err)
		}
	}
}

func TestFilePolicyValidate(t *testing.T) {
	d := DefaultFiles()
	for k, fp := range d {
		if err := fp.Validate(k); err != nil {
			t.Errorf("default %s: %v", k, err)
		}
	}
	bad := []struct {
		kind FileKind
		fp   FilePolicy
		msg  string
	}{
		{CIBCredentials, FilePolicy{Path: "/etc/pacemaker/x", Owner: "hacluster", Group: "haclient", Mode: 0o640}, "group or other"},
		{CIBCredentials, FilePolicy{Path: "etc/x", Owner: "hacluster", Group: "haclient", Mode: 0o600}, "not absolute"},
		{CIBCredentials, FilePolicy{Path: "/etc/../x", Owner: "hacluster", Group: "haclient", Mode: 0o600}, "'..'"},
		{CIBCredentials, FilePolicy{Path: "~/x", Owner: "hacluster", Group: "haclient", Mode: 0o600}, "not absolute"},
		{Authkey, FilePolicy{Path: "/etc/pacemaker/authkey", Owner: "", Group: "haclient", Mode: 0o600}, "empty"},
		{Authkey, FilePolicy{Path: "/", Owner: "hacluster", Group: "haclient", Mode: 0o600}, "names no file"},
		{ClientKey, FilePolicy{Path: "~/../x", Mode: 0o600}, "'..'"},
		{ClientKey, FilePolicy{Path: "rel/x", Mode: 0o600}, "absolute or start with ~/"},
		{ClientKey, FilePolicy{Path: "~/k", Owner: "root", Mode: 0o600}, "admin's own"},
		{ClientEnv, FilePolicy{Path: "~/a\nb", Mode: 0o600}, "control character"},
	}
	for _, tc := range bad {
		err := tc.fp.Validate(tc.kind)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Validate(%s %+v) = %v, want %q", tc.kind, tc.fp, err, tc.msg)
		}
	}
}

func TestParseAge(t *testing.T) {
	good := map[string]time.Duration{"90d": 90 * Day, "365d": 365 * Day, "12h": 12 * time.Hour, "2w": 14 * Day}
	for in, want := range good {
		if got, err := ParseAge(in); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v", in, got, err)
		}
		if got := FormatAge(want); in != "2w" && got != in {
			t.Errorf("FormatAge(%v) = %s", want, got)
		}
	}
	for _, in := range []string{"", "d", "90", "90s", "-1d", "0d", "1.5d", "99999999d", "d90"} {
		if _, err := ParseAge(in); err == nil {
			t.Errorf("ParseAge(%q) succeeded", in)
		}
	}
}

func TestPolicy(t *testing.T) {
	p := Default()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Identity("alice") != "hacluster" || p.RotateAfter.CIB != 90*Day || p.RotateAfter.Authkey != 365*Day {
		t.Errorf("defaults: %+v", p)
	}
	p.IdentityMode = PerUser
	if p.Identity("alice") != "alice" {
		t.Error("per-user identity")
	}
}

// TestPolicyValidate: every problem is a *FieldError naming its field as
// the config file does, and one field's problems stay together.
func TestPolicyValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(p *Policy)
		fields map[string]string // field -> a part of its message
	}{
		{"identity mode", func(p *Policy) { p.IdentityMode = "x" }, map[string]string{"identity_mode": `identity_mode "x"`}},
		{"psk size", func(p *Policy) { p.PSKBytes = 8 }, map[string]string{"psk_bytes": "16 to 512 bytes, got 8"}},
		{"authkey size", func(p *Policy) { p.AuthkeyBytes = 1 }, map[string]string{"authkey_bytes": "got 1"}},
		{"file mode and path", func(p *Policy) {
			p.Files[Authkey] = FilePolicy{Path: "rel", Owner: "hacluster", Group: "haclient", Mode: 0o644}
		}, map[string]string{"files.authkey": "group or other"}},
		{"missing file", func(p *Policy) { delete(p.Files, ClientEnv) }, map[string]string{"files.client_env": "missing"}},
		{"all at once", func(p *Policy) {
			p.IdentityMode, p.PSKBytes, p.AuthkeyBytes = "", 8, 1
			p.Files[ClientKey] = FilePolicy{Path: "~/k", Owner: "root", Mode: 0o600}
		}, map[string]string{"identity_mode": "want", "psk_bytes": "got 8", "authkey_bytes": "got 1", "files.client_key": "admin's own"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Default()
			tc.change(&p)
			err := p.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			got := map[string]string{}
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("%v is not a *FieldError", e)
				}
				if _, dup := got[fe.Field]; dup {
					t.Errorf("field %s reported twice", fe.Field)
				}
				got[fe.Field] = fe.Err.Error()
				if !strings.HasPrefix(e.Error(), fe.Field+": ") {
					t.Errorf("%q does not start with its field", e)
				}
			}
			for f, msg := range tc.fields {
				if !strings.Contains(got[f], msg) {
					t.Errorf("%s: %q, want it to say %q", f, got[f], msg)
				}
			}
			if len(got) != len(tc.fields) {
				t.Errorf("fields %v, want %v", got, tc.fields)
			}
		})
	}
	// Two problems with one file are two errors in its Err.
	p := Default()
	p.Files[CIBCredentials] = FilePolicy{Path: "rel", Owner: "hacluster", Group: "haclient", Mode: 0o644}
	var fe *FieldError
	if !errors.As(p.Validate(), &fe) || len(fe.Err.(interface{ Unwrap() []error }).Unwrap()) != 2 {
		t.Errorf("cib_credentials with a bad path and mode: %v", p.Validate())
	}
}

func TestKeySize(t *testing.T) {
	p := Default()
	p.PSKBytes, p.AuthkeyBytes = 64, 1024
	for _, tc := range []struct {
		kind keys.Kind
		want int
	}{
		{keys.PSK, 64},
		{keys.Authkey, 1024},
		{keys.Password, keys.DefaultPasswordBytes},
	} {
		if got := p.KeySize(tc.kind); got != tc.want {
			t.Errorf("KeySize(%s) = %d, want %d", tc.kind, got, tc.want)
		}
	}
}

func TestMaxAgeAndDue(t *testing.T) {
	p := Default()
	p.RotateAfter = Rotation{CIB: 30 * Day, Authkey: 400 * Day}
	made := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		kind keys.Kind
		want time.Duration
	}{
		{keys.PSK, 30 * Day},
		{keys.Password, 30 * Day}, // hacluster's password rotates with the shared key
		{keys.Authkey, 400 * Day},
	} {
		if got := p.MaxAge(tc.kind); got != tc.want {
			t.Errorf("MaxAge(%s) = %v, want %v", tc.kind, got, tc.want)
		}
		if got := p.Due(tc.kind, made); !got.Equal(made.Add(tc.want)) {
			t.Errorf("Due(%s, %v) = %v, want %v", tc.kind, made, got, made.Add(tc.want))
		}
	}
}

func TestVaultPolicyInput(t *testing.T) {
	for _, r := range VaultRoles {
		req := VaultPolicyRequest{Role: r, Mount: "secret", Prefix: "pcmkeys/prod", User: "alice", Identity: "hacluster"}
		hcl, err := VaultPolicy(req)
		if err != nil || !strings.Contains(hcl, `path "secret/`) {
			t.Errorf("%s: %v\n%s", r, err, hcl)
		}
	}
	bad := []VaultPolicyRequest{
		{Role: "root", Mount: "secret", Prefix: "p"},
		{Role: VaultAdmin, Mount: "", Prefix: "p"},
		{Role: VaultAdmin, Mount: "secret", Prefix: "p/*"},
		{Role: VaultAdmin, Mount: "sec\"ret", Prefix: "p"},
		{Role: VaultSelf, Mount: "secret", Prefix: "p", User: "a:b", Identity: "x"},
		{Role: VaultSelf, Mount: "secret", Prefix: "p", User: "alice", Identity: "*"},
	}
	for _, r := range bad {
		if _, err := VaultPolicy(r); err == nil {
			t.Errorf("VaultPolicy(%+v) succeeded", r)
		}
	}
}
