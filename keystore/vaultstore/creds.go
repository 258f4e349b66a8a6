package vaultstore

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/pcmkeys/pcmkeys/keys"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/internal/holders"
)

// keptVersions is how many versions of a credential Vault keeps, and how
// many fingerprints its custom metadata holds (Vault allows 64 keys).
const keptVersions = 50

func encodeKey(id keystore.ID, key keys.Secret) string {
	if id.Kind() == keys.Authkey {
		return base64.StdEncoding.EncodeToString(key)
	}
	return hex.EncodeToString(key)
}

func decodeKey(id keystore.ID, s string) (keys.Secret, error) {
	var b []byte
	var err error
	if id.Kind() == keys.Authkey {
		b, err = base64.StdEncoding.DecodeString(s)
	} else {
		b, err = hex.DecodeString(s)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: the key in vault is not valid %s", id, map[bool]string{true: "base64", false: "hex"}[id.Kind() == keys.Authkey])
	}
	return keys.Secret(b), nil
}

func versionKey(v int) string { return "v" + strconv.Itoa(v) }

// Get implements keystore.Store.
func (s *Store) Get(ctx context.Context, id keystore.ID) (keystore.Credential, error) {
	cred := keystore.Credential{ID: id}
	if err := id.Validate(); err != nil {
		return cred, err
	}
	p := s.path(string(id))
	sec, err := s.kv.Get(ctx, p)
	if errors.Is(err, vault.ErrSecretNotFound) || (err == nil && (sec == nil || sec.Data == nil)) {
		return s.whyMissing(ctx, id)
	}
	if err != nil {
		return cred, s.translate(err, "read", "data/"+p, "read")
	}
	enc, _ := sec.Data["key"].(string)
	key, err := decodeKey(id, enc)
	if err != nil {
		return cred, err
	}
	fp, _ := sec.Data["fingerprint"].(string)
	if keys.Fingerprint(key) != fp {
		return cred, fmt.Errorf("%s version %d: key does not match its recorded fingerprint", id, sec.VersionMetadata.Version)
	}
	by, _ := sec.Data["created_by"].(string)
	cred.Key = key
	cred.Version = keystore.Version{Version: sec.VersionMetadata.Version, Created: sec.VersionMetadata.CreatedTime, CreatedBy: by, Fingerprint: fp}
	return cred, nil
}

// whyMissing tells a credential never written from one whose current
// version was destroyed or deleted, with the version set in the latter
// case.
func (s *Store) whyMissing(ctx context.Context, id keystore.ID) (keystore.Credential, error) {
	cred := keystore.Credential{ID: id}
	hist, err := s.History(ctx, id)
	if err != nil {
		return cred, err
	}
	cred.Version = hist[len(hist)-1]
	if cred.Version.Destroyed {
		return cred, fmt.Errorf("%s version %d: %w", id, cred.Version.Version, keystore.ErrDestroyed)
	}
	return cred, fmt.Errorf("%s version %d: %w", id, cred.Version.Version, keystore.ErrNotFound)
}

// Put implements keystore.Store.
func (s *Store) Put(ctx context.Context, id keystore.ID, key keys.Secret, opts keystore.PutOptions) (keystore.Version, error) {
	var ver keystore.Version
	if err := id.Validate(); err != nil {
		return ver, err
	}
	if err := keys.CheckSize(id.Kind(), len(key)); err != nil {
		return ver, fmt.Errorf("%s: %w", id, err)
	}
	p := s.path(string(id))
	fp := keys.Fingerprint(key)
	data := map[string]any{"key": encodeKey(id, key), "fingerprint": fp, "created_by": opts.CreatedBy}
	sec, err := s.kv.Put(ctx, p, data, vault.WithCheckAndSet(opts.CAS))
	if err != nil {
		return ver, s.translate(err, "write", "data/"+p, "create/update")
	}
	ver = keystore.Version{Version: sec.VersionMetadata.Version, Created: sec.VersionMetadata.CreatedTime, CreatedBy: opts.CreatedBy, Fingerprint: fp, Holders: holders.Summary(opts.Holders)}
	// The version's fingerprint and creator go to custom metadata too, so
	// History needs no key. A failure here leaves the key stored and
	// readable; History then shows the version without a fingerprint.
	custom := map[string]any{"kind": string(id.Kind()), versionKey(ver.Version): fp + " " + opts.CreatedBy, "holders": nil}
	if ver.Holders != "" { // Vault refuses an empty value; nil removes the key
		custom["holders"] = ver.Holders
	}
	if old := ver.Version - keptVersions; old > 0 {
		custom[versionKey(old)] = nil
	}
	max := keptVersions
	if err := s.kv.PatchMetadata(ctx, p, vault.KVMetadataPatchInput{CustomMetadata: custom, MaxVersions: &max}); err != nil {
		return ver, s.translate(err, "write metadata of", "metadata/"+p, "patch")
	}
	return ver, nil
}

// History implements keystore.Store.
func (s *Store) History(ctx context.Context, id keystore.ID) ([]keystore.Version, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	p := s.path(string(id))
	md, err := s.kv.GetMetadata(ctx, p)
	if errors.Is(err, vault.ErrSecretNotFound) || (err == nil && (md == nil || md.CurrentVersion == 0)) {
		return nil, fmt.Errorf("%s: %w", id, keystore.ErrNotFound)
	}
	if err != nil {
		return nil, s.translate(err, "read metadata of", "metadata/"+p, "read")
	}
	out := make([]keystore.Version, 0, len(md.Versions))
	for _, vm := range md.Versions {
		v := keystore.Version{Version: vm.Version, Created: vm.CreatedTime, Destroyed: vm.Destroyed || !vm.DeletionTime.IsZero()}
		if c, ok := md.CustomMetadata[versionKey(vm.Version)].(string); ok {
			v.Fingerprint, v.CreatedBy, _ = strings.Cut(c, " ")
		}
		if vm.Version == md.CurrentVersion {
			v.Holders, _ = md.CustomMetadata["holders"].(string)
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	if len(out) == 0 || out[len(out)-1].Version != md.CurrentVersion {
		return nil, fmt.Errorf("%s: vault metadata lists no current version %d", id, md.CurrentVersion)
	}
	return out, nil
}

// Destroy implements keystore.Store. Vault has no check-and-set for a
// destroy, so the current version is checked before and after: a version
// written meanwhile survives and the call fails with ErrConflict.
func (s *Store) Destroy(ctx context.Context, id keystore.ID, cas int) error {
	hist, err := s.History(ctx, id)
	if err != nil {
		return err
	}
	if cur := hist[len(hist)-1].Version; cur != cas {
		return fmt.Errorf("%s is at version %d, not %d: %w", id, cur, cas, keystore.ErrConflict)
	}
	versions := make([]int, 0, len(hist))
	for _, h := range hist {
		versions = append(versions, h.Version)
	}
	p := s.path(string(id))
	if err := s.kv.Destroy(ctx, p, versions); err != nil {
		return s.translate(err, "destroy", "destroy/"+p, "update")
	}
	after, err := s.History(ctx, id)
	if err != nil {
		return err
	}
	if cur := after[len(after)-1]; cur.Version != cas || !cur.Destroyed {
		return fmt.Errorf("%s was written during the destroy (now version %d): %w", id, cur.Version, keystore.ErrConflict)
	}
	return nil
}

// list returns the names under PREFIX/dir.
func (s *Store) list(ctx context.Context, dir string) ([]string, error) {
	p := s.mount + "/metadata/" + s.path(dir)
	sec, err := s.client.Logical().ListWithContext(ctx, p)
	if err != nil {
		return nil, s.translate(err, "list", "metadata/"+s.path(dir), "list")
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	raw, _ := sec.Data["keys"].([]any)
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		if name, ok := k.(string); ok && !strings.HasSuffix(name, "/") {
			out = append(out, name)
		}
	}
	return out, nil
}
