package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/audit"
	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/filestore"
	"github.com/pcmkeys/pcmkeys/keystore/vaultstore"
	"github.com/pcmkeys/pcmkeys/rotate"
)

// openEnv loads the config and opens the store for a lifecycle command.
// The returned function closes the store. A dry run of init against a file
// store that does not exist yet plans against an empty one in a temporary
// directory, removed on close.
func openEnv(ctx context.Context, g *globals, createStore bool) (*rotate.Env, func(), error) {
	cfg, err := config.Load(config.Find(g.configPath))
	if err != nil {
		return nil, nil, err
	}
	var store keystore.Store
	cleanup := func() {}
	store, err = rotate.OpenStore(ctx, cfg, createStore && !g.dryRun)
	if g.dryRun && createStore && errors.Is(err, filestore.ErrNoStore) {
		fmt.Fprintf(g.stderr, "dry run: the store %s does not exist yet; planning against an empty one\n", cfg.Store.Path)
		tmp, terr := os.MkdirTemp("", "pcmkeys-dry-run-")
		if terr != nil {
			return nil, nil, terr
		}
		cleanup = func() { os.RemoveAll(tmp) }
		store, err = filestore.Open(filepath.Join(tmp, "store"), filepath.Join(tmp, "store.agekey"), filestore.Options{Create: true})
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	env := &rotate.Env{
		Config: cfg, Store: store, Operator: rotate.CurrentOperator(),
		Parallel: g.parallel, DryRun: g.dryRun, LockWait: g.lockWait, Log: g.logger(), Progress: newProgress(g),
		Audit: audit.Open(cfg.AuditPath).WithSyslog(cfg.AuditSyslog),
	}
	if vs, ok := store.(*vaultstore.Store); ok {
		env.VaultIdentity = vs.TokenName(ctx)
	}
	return env, func() { env.Close(); store.Close(); cleanup() }, nil
}

// signalContext is cancelled by the first SIGINT or SIGTERM: workflows
// stop starting new work, remove what they staged and end (a host that
// does not answer is given up after ssh.command_timeout), and pcmkeys
// exits 130. A second signal exits at once; the cluster lock then expires
// by itself within a minute.
func signalContext(g *globals) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		g.interrupted.Store(true)
		fmt.Fprintln(g.stderr, "pcmkeys: interrupted: stopping and cleaning up (interrupt again to exit at once)")
		cancel()
		select {
		case <-sigs:
			fmt.Fprintln(g.stderr, "pcmkeys: interrupted again: exiting now; staged temporary files may remain (push sweeps them)")
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

func newInitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Check config and store; create the cluster's first keys if absent",
		Long: `Load and check the config, open the store (creating a file store), create the
authkey and (in shared mode) the hacluster PSK if the store has none, and write
cib-credentials and authkey to every node that lacks them. A server file that
exists with other content is left alone and reported.`,
		Args: argsExactly(0),
		RunE: func(*cobra.Command, []string) error {
			return runWorkflowIn(g, true, rotate.Init)
		},
	}
}

type onboardOptions struct {
	clients []string
	keyFile string
	verify  bool
}

func newOnboardCmd(g *globals) *cobra.Command {
	opts := &onboardOptions{}
	cmd := &cobra.Command{
		Use:   "onboard USER --client HOST... [--key-file PATH]",
		Short: "Give an admin access",
		Long: `Record USER as an admin and write their client key file and env file on each
client host (owner USER, mode 0600). In per-user mode USER gets a key of their
own, and every node's cib-credentials gains the line for it; in shared mode
USER gets the shared hacluster key. USER must exist on every client host.`,
		Args: argsExactly(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(opts.clients) == 0 {
				return flagErrorf("name at least one client host with --client")
			}
			return runWorkflow(g, func(ctx context.Context, env *rotate.Env) (*rotate.Report, error) {
				return rotate.Onboard(ctx, env, rotate.OnboardRequest{User: args[0], Clients: opts.clients, KeyFile: opts.keyFile, Verify: opts.verify})
			})
		},
	}
	cmd.Flags().StringSliceVar(&opts.clients, "client", nil, "client host the admin works from (repeat or comma-separate)")
	cmd.Flags().StringVar(&opts.keyFile, "key-file", "", "client key path, ~/ or under policy.client_dirs (default: policy files.client_key)")
	cmd.Flags().BoolVar(&opts.verify, "verify", false, "then run the real client as the admin on each client host and report whether the login works")
	return cmd
}
