package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/audit"
	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/policies"
	"github.com/pcmkeys/pcmkeys/rotate"
)

func newStatusCmd(g *globals) *cobra.Command {
	var req rotate.StatusRequest
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Every credential's version, age and due date; every host's files",
		Long: `Compare every host with the store without changing anything. Per credential:
version, fingerprint, age and due date. Per host and file: ok, missing, drift
(content differs), wrong owner, wrong mode, unsafe (a link or not a regular
file), stale (a revoked admin's file still there), or the host unreachable.
With --verify, also run the real client (cib.verify_command, default
"cibadmin --query") as each admin on each of their client hosts with nothing
but their env file, and report whether the login works, and why not.
Exit 4 when anything is found, 0 when all is in sync.`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			return withEnv(g, false, func(ctx context.Context, env *rotate.Env) error {
				env.Progress = nil // status prints its own table
				st, err := rotate.Status(ctx, env, req)
				if err != nil && !errors.Is(err, rotate.ErrFindings) {
					return err // no report: it would look like a clean one
				}
				return errors.Join(printResult(g, st, statusText(st)), err)
			})
		},
	}
	cmd.Flags().BoolVar(&req.Verify, "verify", false, "also check each admin's login from each client host with the real client")
	cmd.Flags().StringSliceVar(&req.Hosts, "host", nil, "only these hosts (repeat or comma-separate)")
	return cmd
}

// loginsText renders login checks.
func loginsText(b *strings.Builder, logins []rotate.LoginCheck) {
	if len(logins) == 0 {
		return
	}
	b.WriteString("\nlogins (the real client, as the admin, with their env file):\n")
	for _, lc := range logins {
		state := "ok"
		if !lc.OK {
			state = "FAILED: " + lc.Reason
		}
		fmt.Fprintf(b, "  %-12s on %-16s %s\n", lc.User, lc.Host, state)
	}
}

func statusText(st *rotate.StatusReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s %-5s %-6s %-22s %s\n", "CREDENTIAL", "VER", "AGE", "DUE", "FINGERPRINT")
	for _, c := range st.Credentials {
		due := c.Due.UTC().Format(time.RFC3339)
		if c.Overdue {
			due += " OVERDUE"
		}
		fmt.Fprintf(&b, "%-22s v%-4d %-6s %-22s %s\n", c.ID, c.Version, c.Age, due, c.Fingerprint)
	}
	for _, h := range st.Hosts {
		fmt.Fprintf(&b, "\nhost %s: %s", h.Host, words(h.State))
		if h.Error != "" {
			fmt.Fprintf(&b, ": %s", h.Error)
		}
		b.WriteString("\n")
		for _, f := range h.Files {
			line := fmt.Sprintf("  %-40s %-8s %s", f.Path, f.Owner, words(f.State))
			if f.Detail != "" {
				line += " (" + f.Detail + ")"
			}
			b.WriteString(line + "\n")
		}
	}
	loginsText(&b, st.Logins)
	if st.Findings > 0 {
		fmt.Fprintf(&b, "\n%d finding(s)\n", st.Findings)
	} else {
		b.WriteString("\nall in sync\n")
	}
	return b.String()
}

func newAuditCmd(g *globals) *cobra.Command {
	var since string
	var last int
	cmd := &cobra.Command{
		Use:   "audit [--since DURATION|TIME] [-n N]",
		Short: "Show the audit trail",
		Long: `Print the records of the audit trail (config audit.path), oldest first, one
line each: time, operator (and "(vault IDENTITY)"), action, result, the
arguments in brackets, then key=value fields: created, used, destroyed and
removed credentials as ID:vVERSION:FINGERPRINT; hosts_ok and hosts_failed
(HOST: ERROR; …); the number of steps; error. A value with a space, a quote, '=', a bracket or a
control character is quoted as in Go, so a record never spans lines. -o json
prints the records whole (steps included) as a JSON array. --since keeps the
records from a time on: a duration back from now (36h, 7d, 2w) or a time
(2026-01-02, local midnight, or RFC 3339); -n keeps the last N.
"pcmkeys audit rules" prints auditd rules for the files pcmkeys manages.`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			if last < 0 {
				return flagErrorf("-n %d: want a number of records (0: all)", last)
			}
			cfg, err := config.Load(config.Find(g.configPath))
			if err != nil {
				return err
			}
			recs, err := audit.Open(cfg.AuditPath).Read()
			if err != nil {
				return err
			}
			recs = selectRecords(recs, from, last)
			return printResult(g, recs, auditText(recs))
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only records from then on: a duration back from now (36h, 7d) or a time (2026-01-02, RFC 3339)")
	cmd.Flags().IntVarP(&last, "last", "n", 0, "only the last N records (0: all)")
	cmd.AddCommand(newAuditRulesCmd(g))
	return cmd
}

// parseSince reads --since: a duration back from now (Go's 90m or 36h,
// or a rotation age's 7d or 2w), a date (local midnight) or an RFC 3339
// time. Empty is the zero time: every record.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if d, err := policies.ParseAge(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, flagErrorf("--since %q: want a duration back from now (36h, 7d, 2w) or a time (2026-01-02 or RFC 3339)", s)
}

// selectRecords keeps the records from from on, then the last n of them
// (n 0: all). The result is never nil, so JSON shows [].
func selectRecords(recs []audit.Record, from time.Time, n int) []audit.Record {
	out := []audit.Record{}
	for _, r := range recs {
		if !r.Time.Before(from) {
			out = append(out, r)
		}
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// auditText renders records one line each (see newAuditCmd's help).
func auditText(recs []audit.Record) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(auditLine(r))
		b.WriteByte('\n')
	}
	return b.String()
}

func auditLine(r audit.Record) string {
	f := []string{logValue(r.Time.UTC().Format(time.RFC3339)), logValue(r.Operator)}
	if r.VaultIdentity != "" {
		f = append(f, "(vault "+logValue(r.VaultIdentity)+")")
	}
	f = append(f, logValue(r.Action), logValue(r.Result))
	if len(r.Args) > 0 {
		args := make([]string, len(r.Args))
		for i, a := range r.Args {
			args[i] = logValue(a)
		}
		f = append(f, "["+strings.Join(args, " ")+"]")
	}
	kv := func(k, v string) {
		if v != "" {
			f = append(f, k+"="+logValue(v))
		}
	}
	changes := map[string][]string{}
	for _, c := range r.Credentials {
		item := fmt.Sprintf("%s:v%d", c.ID, c.Version)
		if c.Fingerprint != "" {
			item += ":" + c.Fingerprint
		}
		switch c.Change {
		case "created", "used", "destroyed", "removed":
			changes[c.Change] = append(changes[c.Change], item)
		default: // a change this version does not know: keep it whole
			changes["changed"] = append(changes["changed"], item+":"+c.Change)
		}
	}
	for _, k := range []string{"created", "used", "destroyed", "removed", "changed"} {
		kv(k, strings.Join(changes[k], ","))
	}
	kv("hosts_ok", strings.Join(r.HostsOK, ","))
	var failed []string
	for _, h := range r.HostsFailed {
		failed = append(failed, h.Host+": "+h.Error)
	}
	kv("hosts_failed", strings.Join(failed, "; "))
	if len(r.Steps) > 0 {
		kv("steps", strconv.Itoa(len(r.Steps)))
	}
	kv("error", r.Error)
	return strings.Join(f, " ")
}

// logValue quotes v as Go does when it is empty or holds a space, a
// quote, '=', a bracket, a backslash or anything unprintable; else v as
// it is.
func logValue(v string) string {
	if v == "" {
		return `""`
	}
	for _, r := range v {
		if strings.ContainsRune(` "=[]()\`, r) || !unicode.IsPrint(r) {
			return strconv.Quote(v)
		}
	}
	return v
}

func newDoctorCmd(g *globals) *cobra.Command {
	var hosts []string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Preflight: reachability, root, Pacemaker versions, owners, modes, client env",
		Long: `Check, without changing anything, that pcmkeys can log in to every host and act
as root there; which Pacemaker each node runs (and whether it reads the authkey
only at start); that server files and their directories have safe owners and
modes; and that every admin's key file exists with theirs and their env file
sets CIB_encrypted=true (without it Pacemaker talks to the CIB in plaintext).
Exit 4 when anything is wrong.`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			return withEnv(g, false, func(ctx context.Context, env *rotate.Env) error {
				rep, err := rotate.Doctor(ctx, env, hosts)
				if err != nil && !errors.Is(err, rotate.ErrFindings) {
					return err
				}
				return errors.Join(printResult(g, rep, doctorText(rep)), err)
			})
		},
	}
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "only these hosts (repeat or comma-separate)")
	return cmd
}

func doctorText(rep *rotate.DoctorReport) string {
	var b strings.Builder
	for _, h := range rep.Hosts {
		fmt.Fprintf(&b, "host %s (%s)\n", h.Host, h.Role)
		for _, c := range h.Checks {
			mark := "ok  "
			switch {
			case !c.OK:
				mark = "FAIL"
			case c.Warning:
				mark = "WARN"
			}
			fmt.Fprintf(&b, "  %s %s", mark, c.Name)
			if c.Detail != "" {
				fmt.Fprintf(&b, ": %s", c.Detail)
			}
			b.WriteString("\n")
		}
	}
	switch {
	case rep.Problems > 0:
		fmt.Fprintf(&b, "\n%d problem(s), %d warning(s)\n", rep.Problems, rep.Warnings)
	case rep.Warnings > 0:
		fmt.Fprintf(&b, "\nall checks passed, %d warning(s)\n", rep.Warnings)
	default:
		b.WriteString("\nall checks passed\n")
	}
	return b.String()
}
