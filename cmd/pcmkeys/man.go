package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCmd is the hidden "man DIR": it writes pcmkeys.1 and one page per
// subcommand (pcmkeys-rotate.1, pcmkeys-policy-vault.1, …) into DIR, from
// the same command tree that --help prints. The packages ship them; the
// page date is $SOURCE_DATE_EPOCH when set, so a rebuild is identical.
func newManCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages (section 1) into DIR",
		Hidden: true,
		Args:   argsExactly(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			root := cmd.Root()
			walk(root, func(c *cobra.Command) { c.DisableAutoGenTag = true })
			header := &doc.GenManHeader{Section: "1", Source: "pcmkeys " + buildVersion(), Manual: "pcmkeys manual"}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("man pages in %s: %w", dir, err)
			}
			if g.verbose {
				fmt.Fprintf(g.stderr, "man pages written to %s\n", dir)
			}
			return nil
		},
	}
}

// walk calls fn on cmd and every command beneath it.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		walk(c, fn)
	}
}
