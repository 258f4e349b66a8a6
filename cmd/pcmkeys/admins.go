package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/rotate"
)

func newAdminsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "admins",
		Short: "Who holds what, where, and how old it is",
		Long: `List every admin the store records: their identity, state (active; revoking:
a revocation that has not finished; revoked), when they were onboarded, the
client hosts and files they hold, and the version and age of their key (from
the store's history: no key is read). Changes nothing; takes no lock.`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			return withEnv(g, false, func(ctx context.Context, env *rotate.Env) error {
				rep, err := rotate.Admins(ctx, env)
				if err != nil {
					return err
				}
				return printResult(g, rep, adminsText(rep))
			})
		},
	}
}

func adminsText(rep *rotate.AdminsReport) string {
	var b strings.Builder
	if len(rep.Admins) == 0 {
		return "no admins\n"
	}
	fmt.Fprintf(&b, "%-16s %-16s %-9s %-10s %-22s %-5s %s\n", "USER", "IDENTITY", "STATE", "ONBOARDED", "CREDENTIAL", "VER", "AGE")
	for _, a := range rep.Admins {
		ver, age := "-", "-"
		if a.Version > 0 {
			ver, age = fmt.Sprintf("v%d", a.Version), a.KeyAge
		}
		fmt.Fprintf(&b, "%-16s %-16s %-9s %-10s %-22s %-5s %s\n", a.User, a.Identity, a.State, day(a.Onboarded), a.Credential, ver, age)
		for _, c := range a.Clients {
			fmt.Fprintf(&b, "    %-14s %s  %s\n", c.Host, c.KeyFile, c.EnvFile)
		}
	}
	return b.String()
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateOnly)
}

func newRemoveClientCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove-client USER HOST...",
		Short: "Take client hosts away from an admin who stays an admin",
		Long: `Remove an admin's files (key, password and env file; only files that are theirs)
from the client hosts named, and those hosts from their record. Their key is not
rotated: they still hold it on their other hosts. To take access away, use
revoke. Exit 3 names any file that could not be removed; the host then stays in
their record, and running remove-client again finishes it.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return flagErrorf("name the admin and at least one client host")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			return runWorkflow(g, func(ctx context.Context, env *rotate.Env) (*rotate.Report, error) {
				return rotate.RemoveClient(ctx, env, args[0], args[1:])
			})
		},
	}
}
