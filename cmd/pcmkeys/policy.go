package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/policies"
)

type policyOptions struct {
	role   string
	user   string
	mount  string
	prefix string
}

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Print ready-to-apply access policies",
	}
	cmd.AddCommand(newPolicyVaultCmd(g))
	return cmd
}

func newPolicyVaultCmd(g *globals) *cobra.Command {
	opts := &policyOptions{}
	cmd := &cobra.Command{
		Use:   "vault --role admin|rotator|auditor|self [--user USER]",
		Short: "Print the Vault ACL policy of a role",
		Long: `Print the HCL ACL policy that gives one role exactly what it needs in Vault,
for the mount and prefix of the config's vault store (or --mount and --prefix):

  admin    every command: onboard, rotate, revoke, push, import
  rotator  the scheduled job: new versions of existing keys; reads who holds them
  auditor  versions, dates, fingerprints and holders, never a key
  self     one admin (--user) reads only their own key and record

Apply it with: pcmkeys policy vault --role rotator | vault policy write pcmkeys-rotator -`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error { return policyVaultRun(g, opts) },
	}
	cmd.Flags().StringVar(&opts.role, "role", "", "admin, rotator, auditor or self")
	cmd.Flags().StringVar(&opts.user, "user", "", "the admin, for --role self")
	cmd.Flags().StringVar(&opts.mount, "mount", "", "KV v2 mount (default: the config's)")
	cmd.Flags().StringVar(&opts.prefix, "prefix", "", "prefix under the mount (default: the config's)")
	_ = cmd.RegisterFlagCompletionFunc("role", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		out := make([]string, len(policies.VaultRoles))
		for i, r := range policies.VaultRoles {
			out[i] = string(r)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func policyVaultRun(g *globals, opts *policyOptions) error {
	role := policies.VaultRole(opts.role)
	if opts.role == "" {
		return flagErrorf("--role is required: admin, rotator, auditor or self")
	}
	if (role == policies.VaultSelf) != (opts.user != "") {
		return flagErrorf("--user goes with --role self, and only with it")
	}
	req := policies.VaultPolicyRequest{Role: role, Mount: opts.mount, Prefix: opts.prefix, User: opts.user, Identity: opts.user}
	if req.Mount == "" || req.Prefix == "" || role == policies.VaultSelf {
		cfg, err := config.Load(config.Find(g.configPath))
		if err != nil {
			return err
		}
		if cfg.Store.Type != "vault" {
			return &flagError{errors.New("the config's store is not vault: give --mount and --prefix")}
		}
		if req.Mount == "" {
			req.Mount = cfg.Store.Mount
		}
		if req.Prefix == "" {
			req.Prefix = cfg.Store.Prefix
		}
		req.Identity = cfg.Policy.Identity(opts.user)
	}
	hcl, err := policies.VaultPolicy(req)
	if err != nil {
		return &flagError{err}
	}
	return printResult(g, map[string]string{"role": string(role), "policy": hcl}, hcl)
}
