package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/audit"
	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/filestore"
	"github.com/pcmkeys/pcmkeys/rotate"
)

// vaultBackupHint is what backup and restore say for a Vault store.
const vaultBackupHint = "the store is Vault: back it up and restore it with Vault's own raft snapshots (vault operator raft snapshot save FILE / restore FILE), then run pcmkeys push; see docs/backup.md"

func newBackupCmd(g *globals) *cobra.Command {
	var recipients []string
	var recipientFile string
	cmd := &cobra.Command{
		Use:   "backup FILE [--recipient AGE-PUBLIC-KEY...] [--recipient-file PATH]",
		Short: "Write the whole file store to one age-encrypted archive",
		Long: `Write one archive of the whole file store: every credential's versions with their
keys (destroyed ones stay destroyed) and every admin record, encrypted with age to
the store's own recipient, or to the age public keys given with --recipient and
--recipient-file (then only to those: keep one of them off this machine, and the
archive survives the loss of the store's identity). FILE is created, mode 0600;
an existing file is never replaced. No key is ever in the clear on disk.

The archive records the store's state; restore refuses to put it back over a
store that changed since, unless --force. For a Vault store, use Vault's raft
snapshots (docs/backup.md).`,
		Args:              argsExactly(1),
		ValidArgsFunction: fileArg,
		RunE: func(_ *cobra.Command, args []string) error {
			return runBackup(g, args[0], recipients, recipientFile)
		},
	}
	cmd.Flags().StringSliceVar(&recipients, "recipient", nil, "encrypt to this age public key (age1…) instead of the store's own; repeat for more")
	cmd.Flags().StringVar(&recipientFile, "recipient-file", "", "encrypt to the age public keys in this file, one a line (as age -R)")
	return cmd
}

func newRestoreCmd(g *globals) *cobra.Command {
	var force bool
	var identityFile string
	cmd := &cobra.Command{
		Use:   "restore FILE [--force] [--identity-file PATH]",
		Short: "Put the file store back as a backup archive holds it",
		Long: `Replace the whole file store with a backup's content, all at once: the archive is
decrypted and checked whole first (a damaged archive, or one encrypted to someone
else, is refused and nothing changes), written to a new directory beside the store
with every key re-encrypted to the store's identity, and swapped in with one
rename; the replaced store is then removed. It runs under the cluster's lock.

Check-and-set: if the store changed since the backup (a rotation, an onboarding,
a revocation), restore refuses and lists the differences; --force restores over
them. It says what it restored, and names admins it gives access again (revoked
after the backup: run revoke again) and records it drops. Then run pcmkeys push:
the hosts still hold what the store held before.

A store that does not exist (a lost disk) is made from the archive; if its
identity is lost too, give the identity the archive was encrypted to with
--identity-file (a new store identity is made).`,
		Args:              argsExactly(1),
		ValidArgsFunction: fileArg,
		RunE: func(_ *cobra.Command, args []string) error {
			return runRestore(g, args[0], force, identityFile)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "restore over a store that changed since the backup")
	cmd.Flags().StringVar(&identityFile, "identity-file", "", "age identity file that decrypts the archive, besides the store's own")
	return cmd
}

// fileArg completes a file name: the archive.
func fileArg(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveDefault
}

// fileStoreConfig loads the config and refuses a store that is not the
// file store.
func fileStoreConfig(g *globals, action string) (*config.Config, error) {
	cfg, err := config.Load(config.Find(g.configPath))
	if err != nil {
		return nil, err
	}
	if cfg.Store.Type != "file" {
		return nil, flagErrorf("%s: %s", action, vaultBackupHint)
	}
	return cfg, nil
}

func runBackup(g *globals, path string, recipientKeys []string, recipientFile string) error {
	cfg, err := fileStoreConfig(g, "backup")
	if err != nil {
		return err
	}
	recipients, err := filestore.ParseRecipients(recipientKeys, recipientFile)
	if err != nil {
		return &flagError{err}
	}
	var names []string
	for _, r := range recipients {
		names = append(names, fmt.Sprint(r))
	}
	if _, err := os.Lstat(path); err == nil {
		return flagErrorf("backup: %s exists: a backup never replaces a file; name a new one", path)
	}
	ctx, cancel := signalContext(g)
	defer cancel()
	st, err := openFileStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if len(recipients) == 0 {
		names = []string{fmt.Sprint(st.Recipient()) + " (the store's own)"}
	}
	var archive bytes.Buffer
	info, err := st.Backup(ctx, &archive, recipients...)
	if err == nil && !g.dryRun {
		err = filestore.WriteArchive(path, archive.Bytes())
		if errors.Is(err, fs.ErrExist) {
			return flagErrorf("backup: %s exists: a backup never replaces a file; name a new one", path)
		}
		if err != nil {
			err = fmt.Errorf("backup: %w", err)
		}
	}
	rep := backupReport{File: path, DryRun: g.dryRun, Recipients: names, BackupInfo: info}
	if !g.dryRun {
		err = errors.Join(err, recordAudit(cfg, "backup", path, info.Credentials, "used", err))
	}
	if err != nil {
		return err
	}
	return printResult(g, rep, rep.text())
}

type backupReport struct {
	File       string   `json:"file"`
	DryRun     bool     `json:"dry_run"`
	Recipients []string `json:"recipients"`
	filestore.BackupInfo
}

func (r backupReport) text() string {
	var b strings.Builder
	if r.DryRun {
		fmt.Fprintf(&b, "backup to %s (dry run: nothing was written)\n", r.File)
	} else {
		fmt.Fprintf(&b, "backup written to %s (mode 0600)\n", r.File)
	}
	for _, rc := range r.Recipients {
		fmt.Fprintf(&b, "  encrypted to %s\n", rc)
	}
	credentialsText(&b, r.Credentials)
	for _, a := range r.Admins {
		fmt.Fprintf(&b, "  admin %-18s %s\n", a.User, a.State)
	}
	fmt.Fprintf(&b, "  state %s (restore compares the store with it)\n", r.State)
	return b.String()
}

func credentialsText(b *strings.Builder, creds []filestore.CredentialInfo) {
	for _, c := range creds {
		fp := c.Fingerprint
		if c.Destroyed {
			fp = "(destroyed)"
		}
		fmt.Fprintf(b, "  key %-20s v%-3d %s\n", c.ID, c.Version, fp)
	}
}

// openFileStore opens the file store the config names.
func openFileStore(ctx context.Context, cfg *config.Config) (*filestore.Store, error) {
	st, err := rotate.OpenStore(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	fs, ok := st.(*filestore.Store)
	if !ok {
		st.Close()
		return nil, flagErrorf("%s", vaultBackupHint)
	}
	return fs, nil
}

// recordAudit appends a backup's or restore's record to the audit trail.
func recordAudit(cfg *config.Config, action, file string, creds []filestore.CredentialInfo, change string, runErr error) error {
	r := audit.Record{Operator: rotate.CurrentOperator(), Action: action, Args: []string{file}, Result: "ok"}
	for _, c := range creds {
		r.Credentials = append(r.Credentials, audit.Credential{ID: string(c.ID), Version: c.Version, Fingerprint: c.Fingerprint, Change: change})
	}
	if runErr != nil {
		r.Result, r.Error, r.Credentials = "failed", runErr.Error(), nil
	}
	return audit.Open(cfg.AuditPath).WithSyslog(cfg.AuditSyslog).Append(r)
}

func runRestore(g *globals, path string, force bool, identityFile string) error {
	cfg, err := fileStoreConfig(g, "restore")
	if err != nil {
		return err
	}
	var ids []age.Identity
	if identityFile != "" {
		if ids, err = filestore.ReadIdentities(identityFile); err != nil {
			return &flagError{err}
		}
	}
	data, err := filestore.ReadArchive(path)
	if err != nil {
		return flagErrorf("restore: %v", err)
	}
	ctx, cancel := signalContext(g)
	defer cancel()
	opts := filestore.RestoreOptions{Identities: ids, Force: force, DryRun: g.dryRun}
	var res filestore.RestoreResult
	st, err := openFileStore(ctx, cfg)
	switch {
	case errors.Is(err, filestore.ErrNoStore):
		res, err = filestore.RestoreNew(cfg.Store.Path, cfg.Store.Identity, bytes.NewReader(data), opts)
	case err != nil:
		return err
	case g.dryRun:
		defer st.Close()
		res, err = st.Restore(ctx, bytes.NewReader(data), opts)
	default:
		defer st.Close()
		env := &rotate.Env{Config: cfg, Store: st, Operator: rotate.CurrentOperator(), LockWait: g.lockWait, Log: g.logger()}
		err = env.WithLock(ctx, "restore", func(holder string) error {
			opts.Holder = holder
			var rerr error
			res, rerr = st.Restore(ctx, bytes.NewReader(data), opts)
			return rerr
		})
	}
	refused := errors.Is(err, filestore.ErrBadArchive) || errors.Is(err, filestore.ErrChanged)
	if refused {
		return &flagError{err} // nothing was changed
	}
	if !g.dryRun && !errors.Is(err, keystore.ErrLocked) {
		err = errors.Join(err, recordAudit(cfg, "restore", path, res.Archive.Credentials, "restored", err))
	}
	if err != nil {
		return err
	}
	res.Readmitted = revokedSince(cfg, res)
	rep := restoreReport{File: path, RestoreResult: res}
	return printResult(g, rep, rep.text())
}

// revokedSince adds to the admins the restore readmits (found by
// comparing with the store it replaced) those the audit trail says a
// revoke named after the backup was made, and whose record in the
// archive is not a finished revocation: the trail outlives a lost store.
func revokedSince(cfg *config.Config, res filestore.RestoreResult) []string {
	out := res.Readmitted
	recs, err := audit.Open(cfg.AuditPath).Read()
	if err != nil {
		return out
	}
	for _, r := range recs {
		if r.Action != "revoke" || !r.Time.After(res.Archive.Created) {
			continue
		}
		for _, u := range r.Args {
			for _, a := range res.Archive.Admins {
				if a.User == u && a.State != "revoked" && !slices.Contains(out, u) {
					out = append(out, u)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

type restoreReport struct {
	File string `json:"file"`
	filestore.RestoreResult
}

func (r restoreReport) text() string {
	var b strings.Builder
	a := r.Archive
	switch {
	case r.DryRun:
		fmt.Fprintf(&b, "restore of %s into %s (dry run: nothing was changed)\n", r.File, r.Store)
	case r.Created:
		fmt.Fprintf(&b, "made the store %s from %s (it did not exist)\n", r.Store, r.File)
	default:
		fmt.Fprintf(&b, "restored the store %s from %s\n", r.Store, r.File)
	}
	fmt.Fprintf(&b, "  the backup was made %s from %s\n", a.Created.Format(time.RFC3339), a.Store)
	credentialsText(&b, a.Credentials)
	for _, ad := range a.Admins {
		fmt.Fprintf(&b, "  admin %-18s %s\n", ad.User, ad.State)
	}
	if r.Changed {
		b.WriteString("  the store had changed since the backup (--force):\n")
		for _, d := range r.Differences {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	} else if !r.Created {
		b.WriteString("  the store was as the backup left it\n")
	}
	for _, u := range r.Readmitted {
		fmt.Fprintf(&b, "  note: %s was revoked after the backup and has access again in the restored store: run pcmkeys revoke %s again (after the push)\n", u, u)
	}
	for _, u := range r.Dropped {
		fmt.Fprintf(&b, "  note: the record of %s (onboarded after the backup) is gone: their client files stay on their hosts; onboard them again or delete the files\n", u)
	}
	if r.Leftover != "" {
		fmt.Fprintf(&b, "  note: the replaced store could not be removed: rm -r %s\n", r.Leftover)
	}
	if r.AuthkeyChanged {
		b.WriteString("  note: the authkey is not the one the store had: on a running cluster a bare write of it (push) fences remote nodes at their next reconnect; run pcmkeys rotate --authkey --restart first (docs/backup.md)\n")
	}
	b.WriteString("next: pcmkeys push (the hosts still hold what the store held before)\n")
	return b.String()
}
