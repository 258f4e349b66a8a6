package rotate

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/pcmkeys/pcmkeys/credfile"
	"github.com/pcmkeys/pcmkeys/distribute"
	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
)

// checkClientTargets refuses, before anything is written, client file
// paths that land where pcmkeys must not write on one client host: a
// server file, another admin's file, or an existing file that is not the
// admin's own or that pcmkeys did not write (its content is neither what
// the record says pcmkeys put there nor what it would put there now).
// key is the key the admin will hold, if it exists yet; pw is hacluster's
// password when pcmkeys manages it.
func (e *Env) checkClientTargets(ctx context.Context, c client, admin keystore.Admin, admins []keystore.Admin, entry keystore.Client, key, pw keys.Secret, ident string) error {
	user, home, host := c.account.Name, c.account.Home, c.host.Name
	want := map[string]string{} // path -> SHA-256 of what would be written
	sum := func(b []byte) string { return distribute.File{Content: b}.SHA256() }
	if key != nil {
		if b, err := credfile.RenderClientKey(key); err == nil {
			want[entry.KeyFile] = sum(b)
		}
	}
	if pw != nil {
		want[entry.PasswordFile] = sum(append(pw.PasswordText(), '\n'))
	}
	if b, err := credfile.RenderClientEnv(e.clientEnv(ident, entry.KeyFile, entry.PasswordFile, home)); err == nil {
		want[entry.EnvFile] = sum(b)
	}
	recorded, _ := recordedClient(admin, host)
	for _, p := range entryPaths(entry) {
		abs := expandHome(p, home)
		if e.isServerPath(abs) {
			return badInput("%s on %s is the path of a server file", abs, host)
		}
		if other := ownerOfPath(admins, user, host, abs); other != "" {
			return badInput("%s on %s is %s's client file", abs, host, other)
		}
		st, err := c.conn.Inspect(ctx, p, user)
		if errors.Is(err, distribute.ErrUnsafe) {
			return badInput("%v", err)
		}
		if err != nil {
			return err
		}
		switch {
		case !st.Exists:
			continue
		case st.Symlink || !st.Regular:
			return badInput("%s on %s is not a regular file: pcmkeys will not replace it", abs, host)
		case st.UID != c.account.UID:
			return badInput("%s on %s belongs to uid %d, not to %s: pcmkeys will not take over a file the admin does not own", abs, host, st.UID, user)
		case slices.Contains(entryPaths(recorded), p):
			continue // pcmkeys wrote it for them
		case st.SHA256 != "" && st.SHA256 == want[p]:
			continue // what pcmkeys would write: a rerun after a partial run
		}
		return badInput("%s on %s exists and pcmkeys did not write it: move it away, or choose another --key-file", abs, host)
	}
	return nil
}

// ownerOfPath returns the admin other than user whose recorded client file
// on host is at the absolute path abs, or "".
func ownerOfPath(admins []keystore.Admin, user, host, abs string) string {
	for _, o := range admins {
		if o.User == user || o.RevocationFinished() {
			continue
		}
		for _, oc := range o.Clients {
			if oc.Host != host {
				continue
			}
			for _, p := range []string{oc.KeyFile, oc.EnvFile} {
				if strings.HasPrefix(p, "/") && p == abs {
					return o.User
				}
			}
		}
	}
	return ""
}
