package deliver

import (
	"context"
	"fmt"
	"maps"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/policies"
)

// Mode is how a wanted file is delivered.
type Mode int

const (
	WriteAlways  Mode = iota // write it
	WriteIfDrift             // write it unless the host already holds it
	KeepExisting             // write it only where nothing is (init)
	Remove                   // remove it if it is its owner's (revocation)
	LeaveAlone               // never touch it (a record naming a server file)
)

// Want is one file a host should hold (or lose).
type Want struct {
	File distribute.File
	// Step describes the file for the report; its Action is filled in.
	Step FileStep
	Mode Mode
	// Render, if set, makes the file's content from its owner's home
	// directory on the host (an env file names paths in the home). The
	// engine looks the home up once per owner and host, unless the
	// [Host] already knows it.
	Render func(home string) ([]byte, error)
	// Password, if set, is the password of the account named by
	// [policies.SharedIdentity] to set on the host (chpasswd on stdin);
	// File is then the marker that records it, and decides whether it is
	// needed.
	Password keys.Secret
}

// NewWant describes f for the report. fingerprint is that of the one key
// the file holds ("" for none); identities counts a cib-credentials file's
// lines.
func NewWant(f distribute.File, kind policies.FileKind, fingerprint string, identities int, mode Mode) Want {
	return Want{
		File: f,
		Step: FileStep{
			Path: f.Path, Kind: kind, Owner: f.Owner, Group: f.Group,
			Mode: fmt.Sprintf("%04o", policies.UnixMode(f.Mode)), Fingerprint: fingerprint, Identities: identities,
		},
		Mode: mode,
	}
}

// Host is the files one host should hold.
type Host struct {
	Host  config.Host
	Files []Want
	// Conn is an already open connection to reuse, if any; the engine
	// does not close it.
	Conn distribute.Host
	// Homes are the home directories of owners already looked up on this
	// host, by user name.
	Homes map[string]string
	// Password, if set, is a want whose Password is set once every file
	// is in place, before Then: in a staged commit, in the commit's
	// round trip where the host works batches (chpasswd, then its
	// marker); in a delivery, after the files, as one more of them.
	Password *Want
	// Then, if set, is a command the host runs once every file is in
	// place, before After: in the same round trip as the files where the
	// host works batches.
	Then *Then
	// After, if set, runs on the host's connection once every file is in
	// place (closing live sessions on a node that was cut).
	After func(ctx context.Context, h distribute.Host, res *Result)
	// Orphan marks a host that the store's records name and the config
	// does not list: it cannot be reached, and its files are leftovers.
	Orphan bool
}

// Merge joins plans for the same host, so each host is reached once, with
// its files in the order given.
func Merge(hs []Host) []Host {
	var out []Host
	at := map[string]int{}
	for _, d := range hs {
		i, ok := at[d.Host.Name]
		if ok && out[i].Orphan != d.Orphan {
			ok = false // never merge a reachable host with a stale name
		}
		if !ok {
			at[d.Host.Name] = len(out)
			out = append(out, d)
			continue
		}
		m := &out[i]
		m.Files = append(m.Files, d.Files...)
		if m.Conn == nil {
			m.Conn = d.Conn
		}
		if m.After == nil {
			m.After = d.After
		}
		if m.Then == nil {
			m.Then = d.Then
		}
		if m.Password == nil {
			m.Password = d.Password
		}
		if len(d.Homes) > 0 {
			homes := maps.Clone(m.Homes)
			if homes == nil {
				homes = map[string]string{}
			}
			maps.Copy(homes, d.Homes)
			m.Homes = homes
		}
	}
	return out
}

// Then is a command a host runs once its files are in place (closing the
// live sessions of a node that was cut), where the host works batches in
// the same round trip as its files (its commit, or its delivery). A dry
// run runs neither the command nor Done.
type Then struct {
	// Command is a shell command, run as root as distribute.Host.Exec
	// runs one. It never carries key material.
	Command string
	// Done reads what the command said (its output, or why it failed)
	// into the host's result.
	Done func(ctx context.Context, out string, err error, res *Result)
}

// job is the command as a batch's last job.
func (t *Then) job() distribute.Job { return distribute.Job{Do: distribute.Run, Command: t.Command} }
