package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/audit"
	"github.com/pcmkeys/pcmkeys/config"
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
				st, err := rotate.StatusWith(ctx, env, req)
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
	return &cobra.Command{
		Use:   "audit",
		Short: "Show the audit trail",
		Long:  "Print every record of the audit trail (config audit.path), oldest first.",
		Args:  argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			cfg, err := config.Load(config.Find(g.configPath))
			if err != nil {
				return err
			}
			recs, err := audit.Open(cfg.AuditPath).Read()
			if err != nil {
				return err
			}
			if recs == nil {
				recs = []audit.Record{}
			}
			return printResult(g, recs, auditText(recs))
		},
	}
}

func auditText(recs []audit.Record) string {
	var b strings.Builder
	for _, r := range recs {
		who := r.Operator
		if r.VaultIdentity != "" {
			who += " (vault " + r.VaultIdentity + ")"
		}
		fmt.Fprintf(&b, "%s %s %s %s", r.Time.Format(time.RFC3339), who, r.Action, r.Result)
		if len(r.Args) > 0 {
			fmt.Fprintf(&b, " [%s]", strings.Join(r.Args, " "))
		}
		b.WriteString("\n")
		for _, c := range r.Credentials {
			fmt.Fprintf(&b, "    %s v%d %s %s\n", c.ID, c.Version, c.Change, c.Fingerprint)
		}
		if len(r.HostsOK) > 0 {
			fmt.Fprintf(&b, "    ok: %s\n", strings.Join(r.HostsOK, " "))
		}
		for _, h := range r.HostsFailed {
			fmt.Fprintf(&b, "    failed %s: %s\n", h.Host, h.Error)
		}
		if r.Error != "" {
			fmt.Fprintf(&b, "    error: %s\n", r.Error)
		}
	}
	return b.String()
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
