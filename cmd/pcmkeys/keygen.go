package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/policies"
)

type keygenOptions struct {
	kind         keys.Kind
	bytes        int
	out          string
	owner, group string
}

func newKeygenCmd(g *globals) *cobra.Command {
	opts := &keygenOptions{}
	cmd := &cobra.Command{
		Use:   "keygen psk|authkey [--bytes N] [--out FILE]",
		Short: "Generate a key offline",
		Long: `Generate a key from crypto/rand, with no config, store or network.

  psk      a CIB TLS-PSK key, printed as hex (default 32 bytes, as psktool).
           With --out, the bare hex key is written to a new file, mode 0600,
           ready to use as CIB_key_file.
  authkey  a Pacemaker Remote authkey, raw bytes (default 4096). Written to
           --out (a new file, mode 0600), or to stdout when it is not a
           terminal.

An existing --out file is never replaced.`,
		Args:      argsExactly(1),
		ValidArgs: []string{string(keys.PSK), string(keys.Authkey)},
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := keys.ParseKind(args[0])
			if err == nil && k != keys.PSK && k != keys.Authkey {
				err = fmt.Errorf("keygen makes psk or authkey keys, not %s", k)
			}
			if err != nil {
				return &flagError{err}
			}
			opts.kind = k
			if !cmd.Flags().Changed("bytes") {
				_, opts.bytes, _ = keys.Bounds(k)
			}
			return keygenRun(g, opts)
		},
	}
	cmd.Flags().IntVar(&opts.bytes, "bytes", 0, "key size in bytes (psk: 16-512, default 32; authkey: 32-65536, default 4096)")
	cmd.Flags().StringVar(&opts.out, "out", "", "write the key to this new file (mode 0600)")
	cmd.Flags().StringVar(&opts.owner, "owner", "", "owner of the --out file (authkey default: hacluster, where that user exists; else you)")
	cmd.Flags().StringVar(&opts.group, "group", "", "group of the --out file (authkey default: haclient, where that group exists)")
	return cmd
}

type keygenResult struct {
	Kind        keys.Kind `json:"kind"`
	Bytes       int       `json:"bytes"`
	Fingerprint string    `json:"fingerprint"`
	Path        string    `json:"path,omitempty"`
	Key         string    `json:"key,omitempty"` // hex, psk without --out only
}

// keygenOwner resolves --owner and --group: for an authkey written by
// root, Pacemaker's hacluster:haclient where those exist (Pacemaker reads
// it as hacluster); else the current user's.
func keygenOwner(opts *keygenOptions) (int, int, error) {
	owner, group := opts.owner, opts.group
	if opts.kind == keys.Authkey && owner == "" && group == "" && os.Geteuid() == 0 {
		if _, err := user.Lookup(policies.DefaultServerOwner); err == nil {
			if _, err := user.LookupGroup(policies.DefaultServerGroup); err == nil {
				owner, group = policies.DefaultServerOwner, policies.DefaultServerGroup
			}
		}
	}
	uid, gid := -1, -1
	if owner != "" {
		u, err := user.Lookup(owner)
		if err != nil {
			return 0, 0, fmt.Errorf("--owner: no such user %q on this machine", owner)
		}
		uid, _ = strconv.Atoi(u.Uid)
	}
	if group != "" {
		gr, err := user.LookupGroup(group)
		if err != nil {
			return 0, 0, fmt.Errorf("--group: no such group %q on this machine", group)
		}
		gid, _ = strconv.Atoi(gr.Gid)
	}
	return uid, gid, nil
}

func keygenRun(g *globals, opts *keygenOptions) error {
	if err := keys.CheckSize(opts.kind, opts.bytes); err != nil {
		return err
	}
	if opts.kind == keys.Authkey && opts.out == "" && (g.stdoutIsTerminal() || g.output == "json") {
		return &flagError{errors.New("refusing to write raw authkey bytes to a terminal or into JSON: use --out FILE or redirect stdout")}
	}
	key, err := keys.Generate(opts.kind, opts.bytes)
	if err != nil {
		return err
	}
	res := keygenResult{Kind: opts.kind, Bytes: opts.bytes, Fingerprint: key.Fingerprint(), Path: opts.out}
	if opts.out != "" {
		content := key.Bytes()
		if opts.kind == keys.PSK {
			if content, err = credfile.RenderClientKey(key); err != nil {
				return err
			}
		}
		if g.dryRun {
			fmt.Fprintf(g.stderr, "dry run: would create %s (mode 0600)\n", opts.out)
			return nil
		}
		uid, gid, err := keygenOwner(opts)
		if err != nil {
			return &flagError{err}
		}
		if err := distribute.CreateNewFileOwned(opts.out, content, 0o600, uid, gid); err != nil {
			return err
		}
		return printResult(g, res, fmt.Sprintf("wrote %s %d-byte key to %s (%s)\n", opts.kind, opts.bytes, opts.out, res.Fingerprint))
	}
	if opts.kind == keys.Authkey {
		_, err := g.stdout.Write(key.Bytes())
		return err
	}
	res.Key = hex.EncodeToString(key.Bytes())
	return printResult(g, res, res.Key+"\n")
}
