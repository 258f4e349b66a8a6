package rotate

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/policies"
)

// ImportRequest asks to adopt the keys a node already holds.
type ImportRequest struct {
	// Host is the node whose files are read.
	Host string
	// Force lets Host's files win when other nodes hold different ones, or
	// when the store already has other keys.
	Force bool
}

// Import adopts the authkey and cib-credentials a node holds into the
// store, after checking that every other node holds the same files (a
// cluster whose nodes disagree has no one right key: the operator must say
// which wins with Force). Malformed files are refused with their line
// numbers. In shared mode the "hacluster" line is adopted; in per-user mode
// the lines of admins the store knows. Other lines are named and left out.
func Import(ctx context.Context, e *Env, req ImportRequest) (*Report, error) {
	h, ok := e.Config.Host(req.Host)
	return e.run(ctx, workflow{
		action: "import", args: []string{req.Host},
		validate: func() error {
			if !ok || !h.Role.Holds(policies.Authkey) {
				return badInput("%q is not a node or remote node in the config", req.Host)
			}
			return nil
		},
		act: func(ctx context.Context, rep *Report) error { return e.importFrom(ctx, h, req.Force, rep) },
	})
}

// adopted is one file read from the source node.
type adopted struct {
	kind    policies.FileKind
	content []byte
}

func (e *Env) importFrom(ctx context.Context, src config.Host, force bool, rep *Report) error {
	conn, err := e.connect(ctx, src)
	if err != nil {
		return err
	}
	defer conn.Close()
	kinds := []policies.FileKind{policies.Authkey}
	if src.Role.Holds(policies.CIBCredentials) {
		kinds = append(kinds, policies.CIBCredentials)
	}
	var files []adopted
	for _, k := range kinds {
		fp := e.Config.Policy.Files[k]
		st, err := conn.Inspect(ctx, fp.Path, fp.Owner)
		if err != nil {
			return err
		}
		if !st.Exists {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s has no %s", src.Name, fp.Path))
			continue
		}
		data, err := conn.Read(ctx, fp.Path, fp.Owner)
		if err != nil {
			return err
		}
		files = append(files, adopted{kind: k, content: data})
	}
	if len(files) == 0 {
		return badInput("%s holds neither an authkey nor a cib-credentials file", src.Name)
	}
	if err := e.checkAgreement(ctx, src, files, force, rep); err != nil {
		return err
	}
	for _, f := range files {
		var err error
		if f.kind == policies.Authkey {
			err = e.adoptAuthkey(ctx, f.content, force, rep)
		} else {
			err = e.adoptCIB(ctx, f.content, force, rep)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkAgreement compares the other nodes' files with the source's.
func (e *Env) checkAgreement(ctx context.Context, src config.Host, files []adopted, force bool, rep *Report) error {
	var others []config.Host
	for _, h := range e.Config.Hosts {
		if h.Name != src.Name && h.Role.Holds(policies.Authkey) {
			others = append(others, h)
		}
	}
	disagree := make([]string, len(others))
	unknown := make([]string, len(others))
	distribute.Each(ctx, others, e.Parallel, func(ctx context.Context, h config.Host) error {
		i := indexOf(others, h.Name)
		conn, err := e.connect(ctx, h)
		if err != nil {
			unknown[i] = fmt.Sprintf("could not compare with %s: %v", h.Name, err)
			return nil
		}
		defer conn.Close()
		for _, f := range files {
			if !h.Role.Holds(f.kind) {
				continue
			}
			fp := e.Config.Policy.Files[f.kind]
			st, err := conn.Inspect(ctx, fp.Path, fp.Owner)
			if err == nil && st.Exists && st.SHA256 != (distribute.File{Content: f.content}).SHA256() {
				disagree[i] = fmt.Sprintf("%s holds another %s", h.Name, fp.Path)
			}
		}
		return nil
	})
	var msgs []string
	for _, d := range disagree {
		if d != "" {
			msgs = append(msgs, d)
		}
	}
	if len(msgs) > 0 && !force {
		return badInput("the nodes disagree: %v; say which one wins: pcmkeys import --host NODE --force", msgs)
	}
	rep.Notes = append(rep.Notes, msgs...)
	for _, u := range unknown {
		if u != "" {
			rep.Notes = append(rep.Notes, u)
		}
	}
	return nil
}

// adoptKey stores key as id's current version unless the store holds it
// already; a different key in the store needs force.
func (e *Env) adoptKey(ctx context.Context, id keystore.ID, key keys.Secret, force bool, rep *Report) error {
	cur, err := e.Store.Get(ctx, id)
	cas := cur.Version.Version
	switch {
	case err == nil && cur.Key.Equal(key):
		rep.Credentials = append(rep.Credentials, CredentialChange{ID: id, Version: cas, Fingerprint: cur.Version.Fingerprint})
		return nil
	case err == nil && !force:
		return badInput("the store already holds another %s (version %d, %s); import --force makes the node's key a new version", id, cas, cur.Version.Fingerprint)
	case err != nil && !errors.Is(err, keystore.ErrNotFound) && !errors.Is(err, keystore.ErrDestroyed):
		return err
	}
	if e.DryRun {
		rep.Credentials = append(rep.Credentials, CredentialChange{ID: id, Version: cas + 1, Fingerprint: key.Fingerprint(), Created: true})
		return nil
	}
	v, err := e.Store.Put(ctx, id, key, keystore.PutOptions{CAS: cas, CreatedBy: e.Operator})
	if err != nil {
		return err
	}
	rep.Credentials = append(rep.Credentials, CredentialChange{ID: id, Version: v.Version, Fingerprint: v.Fingerprint, Created: true})
	return nil
}

func (e *Env) adoptAuthkey(ctx context.Context, data []byte, force bool, rep *Report) error {
	key, err := credfile.ParseAuthkey(data)
	if err != nil {
		return badInput("%v", err)
	}
	return e.adoptKey(ctx, keystore.AuthkeyID, key, force, rep)
}

func (e *Env) adoptCIB(ctx context.Context, data []byte, force bool, rep *Report) error {
	entries, err := credfile.ParseCIBCredentials(data)
	if err != nil {
		return badInput("%v", err)
	}
	want := map[string]bool{}
	if e.Config.Policy.IdentityMode == policies.Shared {
		want[policies.SharedIdentity] = true
	} else {
		admins, err := e.Store.ListAdmins(ctx)
		if err != nil {
			return err
		}
		for _, a := range admins {
			if a.Active() {
				want[a.Identity] = true
			}
		}
	}
	found := false
	for _, en := range entries {
		if !want[en.Identity] {
			rep.Notes = append(rep.Notes, fmt.Sprintf("identity %s is not one pcmkeys manages here: left out (the next push removes its line)", en.Identity))
			continue
		}
		found = true
		if err := e.adoptKey(ctx, keystore.CIB(en.Identity), en.Key, force, rep); err != nil {
			return err
		}
	}
	if !found && e.Config.Policy.IdentityMode == policies.Shared {
		return badInput("cib-credentials has no line for identity %s", policies.SharedIdentity)
	}
	return nil
}
