package main

import (
	"context"
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/rotate"
)

// withEnv opens the config and store (creating a file store with
// create), runs fn under a context that SIGINT and SIGTERM cancel, and
// closes them.
func withEnv(g *globals, create bool, fn func(ctx context.Context, env *rotate.Env) error) error {
	ctx, cancel := signalContext(g)
	defer cancel()
	env, closeEnv, err := openEnv(ctx, g, create)
	if err != nil {
		return err
	}
	defer closeEnv()
	return fn(ctx, env)
}

// runWorkflow runs a workflow in withEnv and prints its report, even when
// it failed part-way.
func runWorkflow(g *globals, fn func(ctx context.Context, env *rotate.Env) (*rotate.Report, error)) error {
	return runWorkflowIn(g, false, fn)
}

func runWorkflowIn(g *globals, create bool, fn func(ctx context.Context, env *rotate.Env) (*rotate.Report, error)) error {
	return withEnv(g, create, func(ctx context.Context, env *rotate.Env) error {
		rep, err := fn(ctx, env)
		if err != nil && rep != nil && len(rep.Credentials) == 0 && len(rep.Hosts) == 0 && len(rep.Notes) == 0 {
			return err // refused before anything was done: the error says it all
		}
		return errors.Join(printReport(g, rep), err)
	})
}

func newRotateCmd(g *globals) *cobra.Command {
	req := &rotate.Request{}
	cmd := &cobra.Command{
		Use:   "rotate [USER...] [--cib] [--authkey] [--due]",
		Short: "New keys, staged on every node, then committed everywhere",
		Long: `Give keys new versions. The new server files are staged beside the old ones on
every node; only when every node holds them is the store written and the files
committed everywhere at once. If staging fails anywhere, everything staged is
removed and the old keys stay in force (exit 3, naming the hosts). Admins'
client files follow the commit; push finishes any that could not be reached.

With no selection the CIB keys are rotated: the shared key (and hacluster's
password, when pcmkeys manages it), or in per-user mode every admin's. USER...
(per-user mode) rotates those admins' keys. --due keeps only the selected keys
(all, when nothing else is selected) that are older than policy.rotate_after:
the scheduled job.

--authkey --restart rotates the Pacemaker Remote authkey on the live cluster:
it checks the cluster first (quorum, nodes, remote connections, fencing, failed
actions; --override CHECK), turns maintenance mode on, commits the new key,
restarts what reads it only at start (remote nodes, then each full node, each
waited until the cluster sees it back), restores maintenance mode, waits until
the cluster has settled, and rolls the old key back if a step fails. Without
--restart, --authkey is refused on a cluster that answers crm_mon: a bare write
fences remote nodes at the next reconnect.`,
		RunE: func(_ *cobra.Command, args []string) error {
			req.Users = args
			return runWorkflow(g, func(ctx context.Context, env *rotate.Env) (*rotate.Report, error) {
				return rotate.Rotate(ctx, env, *req)
			})
		},
	}
	cmd.Flags().BoolVar(&req.CIB, "cib", false, "rotate the CIB keys")
	cmd.Flags().BoolVar(&req.Authkey, "authkey", false, "rotate the Pacemaker Remote authkey")
	cmd.Flags().BoolVar(&req.Due, "due", false, "only keys older than the policy allows")
	cmd.Flags().BoolVar(&req.Restart, "restart", false, "with --authkey: rotate on the live cluster — check it, maintenance mode, commit, restart what needs it (config restart.*) one at a time, settle, roll back on failure")
	cmd.Flags().StringSliceVar(&req.Hosts, "host", nil, "only these client hosts get the admins' new keys now (nodes always all; push delivers the rest)")
	cmd.Flags().StringSliceVar(&req.Override, "override", nil, "with --restart: go past a failed precheck ("+strings.Join(rotate.PrecheckNames, ", ")+")")
	return cmd
}

func newRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke USER...",
		Short: "Take access away everywhere, now",
		Long: `Take access away from admins on every host at once: mark them revoked; cut every
node (per-user mode: their lines leave cib-credentials; shared mode: a new shared
key, and hacluster's new password when pcmkeys manages it, staged then committed
on every node that could stage it); close the live remote-CIB sessions on every
node that was cut; give the new key to every remaining admin; delete their client
files, each file on its own.

Exit 0: no node accepts their key, no live session remained, their files are gone
(revoking them again says "already revoked"). Exit 3 lists every leftover by host
and file: run revoke again until it exits 0; it does not rotate again once the
nodes were cut.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return flagErrorf("name at least one admin to revoke")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			return runWorkflow(g, func(ctx context.Context, env *rotate.Env) (*rotate.Report, error) {
				return rotate.Revoke(ctx, env, args)
			})
		},
	}
}

func newFetchCmd(g *globals) *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "fetch [--key-file PATH]",
		Short: "Self-service: write your own key, password and env file, as yourself",
		Long: `Run by an admin on their own machine, as themselves, with their own Vault token
holding only the "self" policy (pcmkeys policy vault --role self --user YOU):
read your record, your key and (shared mode) hacluster's password, and write
~/.pcmkeys/CLUSTER.key, .passwd and .env (0600, yours) with the same write
protocol as every delivery. No root, no SSH; nothing in the store changes.
Then: . ~/.pcmkeys/CLUSTER.env; cibadmin -Q`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			return withEnv(g, false, func(ctx context.Context, env *rotate.Env) error {
				env.Audit = nil // nothing in the store changes; Vault's audit device records the reads
				rep, err := rotate.Fetch(ctx, env, rotate.FetchRequest{User: rotate.CurrentOperator(), KeyFile: keyFile})
				return errors.Join(printReport(g, rep), err)
			})
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "key file path, ~/ or under policy.client_dirs (default: policy files.client_key)")
	return cmd
}

func newPushCmd(g *globals) *cobra.Command {
	var hosts []string
	cmd := &cobra.Command{
		Use:   "push [--host NAME...]",
		Short: "Converge hosts to the store (repairs drift)",
		Long: `Rewrite every file that is missing or differs from the store in content, owner or
mode, on every host or the ones named; remove the files of admins whose
revocation did not finish. Files in sync are left alone.`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			return runWorkflow(g, func(ctx context.Context, env *rotate.Env) (*rotate.Report, error) {
				return rotate.Push(ctx, env, hosts)
			})
		},
	}
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "only these hosts (repeat or comma-separate)")
	return cmd
}

func newImportCmd(g *globals) *cobra.Command {
	req := &rotate.ImportRequest{}
	cmd := &cobra.Command{
		Use:   "import --host NAME [--force]",
		Short: "Adopt the keys a node already holds",
		Long: `Read the authkey and cib-credentials of a node into the store. Every other node
must hold the same files, else import refuses and names them; --force lets
NAME's files win (and replace keys the store already holds, as new versions).
A malformed file is refused with its line numbers. In shared mode the
"hacluster" line is adopted; in per-user mode the lines of known admins.

Adopting a running cluster is this one step: a file store is created if it
does not exist yet, and no key is generated. (init afterwards only adds what
the cluster lacks, such as hacluster's password when pcmkeys manages it.)`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			if req.Host == "" {
				return flagErrorf("--host is required: the node to read")
			}
			return runWorkflowIn(g, true, func(ctx context.Context, env *rotate.Env) (*rotate.Report, error) {
				return rotate.Import(ctx, env, *req)
			})
		},
	}
	cmd.Flags().StringVar(&req.Host, "host", "", "the node whose files to adopt")
	cmd.Flags().BoolVar(&req.Force, "force", false, "this node's files win over other nodes' and the store's")
	return cmd
}
