package rotate

import (
	"fmt"
	"strings"
)

// Per-user identities log in to the remote CIB, after the TLS-PSK
// handshake, through PAM as themselves: pacemaker-based (running as
// hacluster) runs the service CIB_pam_service (default login), and stock
// pam_unix, run as hacluster, can check only hacluster's own password
// (unix_chkpwd). Checked on 3.0.2: alice passes the handshake with her own
// cib-credentials line and gets "Access for remote user alice denied".

// pamRemote are PAM modules that can check the password of a user other
// than the caller (pacemaker-based runs as hacluster).
var pamRemote = []string{"pam_sss", "pam_ldap", "pam_krb5", "pam_winbind", "pam_radius", "pam_tacplus", "pam_userdb", "pam_pwdfile", "pam_oauth2"}

// pamPassive are auth modules that check no password.
var pamPassive = []string{"pam_deny", "pam_permit", "pam_env", "pam_nologin", "pam_faildelay", "pam_securetty", "pam_group", "pam_cap", "pam_faillock", "pam_tally2", "pam_succeed_if", "pam_shells", "pam_listfile", "pam_localuser", "pam_rootok", "pam_selinux", "pam_motd", "pam_mail", "pam_lastlog", "pam_keyinit", "pam_systemd_home", "pam_fprintd", "pam_gnome_keyring", "pam_kwallet5"}

func checkPerUserPAM(p *nodeProbe, add func(Check)) {
	const name = "per-user logins"
	svc := p.pam
	label := "CIB_pam_service=" + svc
	if svc == "" {
		svc, label = "login", "CIB_pam_service unset, so login"
	}
	fix := "fix: give pacemaker-based a CIB_pam_service (in /etc/sysconfig/pacemaker or /etc/default/pacemaker) whose auth stack can check other users' passwords (pam_sss for sssd/LDAP, pam_krb5…), and restart it; or use identity_mode: shared"
	mods, seen := map[string]bool{}, map[string]bool{}
	var walk func(string, int)
	walk = func(s string, depth int) {
		if seen[s] || depth > 5 {
			return
		}
		seen[s] = true
		for _, l := range p.pamAuth[s] {
			f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "-"))
			switch {
			case len(f) >= 2 && f[0] == "@include":
				walk(f[1], depth+1)
			case len(f) >= 3 && (f[1] == "include" || f[1] == "substack"):
				walk(f[2], depth+1)
			case len(f) >= 3:
				i := 2 // the module follows the control: "required" or "[a=b c=d]"
				for strings.HasPrefix(f[1], "[") && i < len(f) && !strings.HasSuffix(f[i-1], "]") {
					i++
				}
				if i < len(f) {
					mods[strings.TrimSuffix(f[i][strings.LastIndexByte(f[i], '/')+1:], ".so")] = true
				}
			}
		}
	}
	walk(svc, 0)
	if !seen[svc] || len(p.pamAuth[svc]) == 0 {
		add(Check{Name: name, OK: true, Warning: true, Detail: fmt.Sprintf("warning: identity_mode is per-user but PAM service %s (%s) has no auth lines in /etc/pam.d/%s: per-user identities would pass the TLS-PSK handshake and then fail the login; %s", svc, label, svc, fix)})
		return
	}
	var remote, unknown []string
	for m := range mods {
		switch {
		case hasPrefixIn(m, pamRemote):
			remote = append(remote, m)
		case m == "pam_unix" || hasPrefixIn(m, pamPassive):
		default:
			unknown = append(unknown, m)
		}
	}
	switch {
	case len(remote) > 0:
		add(Check{Name: name, OK: true, Detail: fmt.Sprintf("PAM service %s (%s) checks passwords with %s", svc, label, strings.Join(remote, ", "))})
	case len(unknown) > 0:
		add(Check{Name: name, OK: true, Detail: fmt.Sprintf("PAM service %s (%s) uses %s: make sure it can check other users' passwords when run as hacluster", svc, label, strings.Join(unknown, ", "))})
	default:
		add(Check{Name: name, OK: true, Warning: true, Detail: fmt.Sprintf(`warning: identity_mode is per-user, but PAM service %s (%s) checks passwords with pam_unix only, which pacemaker-based (running as hacluster) can use only for hacluster's own password: per-user identities pass the TLS-PSK handshake and then fail the login ("Access for remote user alice denied", seen on Pacemaker 3.0.2); %s`, svc, label, fix)})
	}
}

func hasPrefixIn(s string, list []string) bool {
	for _, p := range list {
		if s == p || strings.HasPrefix(s, p+"_") {
			return true
		}
	}
	return false
}
