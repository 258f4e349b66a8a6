package policies

import (
	"fmt"
	"strings"
)

// VaultRole names a set of Vault capabilities that one kind of pcmkeys
// user needs.
type VaultRole string

const (
	// VaultAdmin runs every command: onboard, rotate, revoke, push, import.
	VaultAdmin VaultRole = "admin"
	// VaultRotator is the scheduled job: new versions of existing keys,
	// reading who holds them; it cannot add, remove or destroy.
	VaultRotator VaultRole = "rotator"
	// VaultAuditor reads versions, dates, fingerprints and who holds what —
	// never a key.
	VaultAuditor VaultRole = "auditor"
	// VaultSelf is one admin fetching their own key with their own token.
	VaultSelf VaultRole = "self"
)

// VaultRoles lists the roles in the order the docs give them.
var VaultRoles = []VaultRole{VaultAdmin, VaultRotator, VaultAuditor, VaultSelf}

// VaultPolicyRequest says which policy to render.
type VaultPolicyRequest struct {
	Role   VaultRole
	Mount  string // KV v2 mount
	Prefix string // pcmkeys's prefix under it
	// User and Identity, for VaultSelf: the admin and their PSK identity.
	User, Identity string
}

// VaultPolicy renders the HCL ACL policy for a role. Each policy grants
// exactly the paths and capabilities its role's commands use (see the
// README's Vault layout); a token holding only it is denied everything
// else.
func VaultPolicy(r VaultPolicyRequest) (string, error) {
	if r.Mount == "" || r.Prefix == "" {
		return "", fmt.Errorf("vault policy: mount and prefix are required")
	}
	for _, s := range []string{r.Mount, r.Prefix} {
		if strings.ContainsAny(s, "\"*+\n\\ ") {
			return "", fmt.Errorf("vault policy: %q cannot be used in a policy path", s)
		}
	}
	m, p := r.Mount, r.Prefix
	var b strings.Builder
	fmt.Fprintf(&b, "# pcmkeys role %q for %s/%s\n", r.Role, m, p)
	rule := func(comment, path string, caps ...string) {
		fmt.Fprintf(&b, "\n# %s\npath \"%s\" {\n  capabilities = [\"%s\"]\n}\n", comment, path, strings.Join(caps, "\", \""))
	}
	// metadataRule lets a role patch only what pcmkeys writes to metadata
	// (its custom metadata: fingerprints, holders; and max_versions), never
	// delete_version_after or cas_required, which would let it make the
	// next version destroy itself.
	metadataRule := func(comment, path string) {
		fmt.Fprintf(&b, "\n# %s\npath \"%s\" {\n  capabilities = [\"read\", \"patch\"]\n  allowed_parameters = {\n    \"custom_metadata\" = []\n    \"max_versions\" = []\n  }\n}\n", comment, path)
	}
	rule("Check that the mount is KV version 2.", "sys/internal/ui/mounts/"+m, "read")
	rule("Tell an expired token from a missing capability.", "auth/token/lookup-self", "read")
	rule("Keep a login token alive during long operations.", "auth/token/renew-self", "update")
	switch r.Role {
	case VaultAdmin:
		rule("Keys and admin records: read, write new versions, tombstone records.", m+"/data/"+p+"/*", "create", "read", "update")
		rule("Versions, fingerprints and listings; delete a removed admin's record.", m+"/metadata/"+p+"/*", "read", "list", "patch", "delete")
		rule("Destroy a revoked admin's key versions.", m+"/destroy/"+p+"/cib/*", "update")
	case VaultRotator:
		rule("New versions of existing CIB keys (update only: no new credentials).", m+"/data/"+p+"/cib/*", "read", "update")
		rule("New versions of the authkey.", m+"/data/"+p+"/authkey", "read", "update")
		rule("New versions of hacluster's password (rotated with the shared key).", m+"/data/"+p+"/password/*", "read", "update")
		metadataRule("Versions and fingerprints of the CIB keys; nothing else of their metadata.", m+"/metadata/"+p+"/cib/*")
		metadataRule("Versions and fingerprints of the authkey.", m+"/metadata/"+p+"/authkey")
		metadataRule("Versions and fingerprints of hacluster's password.", m+"/metadata/"+p+"/password/*")
		rule("Who holds what, to deliver new keys to them.", m+"/data/"+p+"/admins/*", "read")
		rule("List the CIB keys and the admins.", m+"/metadata/"+p+"/cib", "list")
		rule("", m+"/metadata/"+p+"/admins", "list")
		rule("The cluster's lock, so that runs never interleave.", m+"/data/"+p+"/lock", "create", "read", "update")
	case VaultAuditor:
		rule("Versions, dates, fingerprints and creators of every key; listings.", m+"/metadata/"+p+"/*", "read", "list")
		rule("Who holds what (admin records hold no key).", m+"/data/"+p+"/admins/*", "read")
	case VaultSelf:
		if err := ValidateUser(r.User); err != nil {
			return "", fmt.Errorf("vault policy for self: %w", err)
		}
		if err := ValidateIdentity(r.Identity); err != nil {
			return "", fmt.Errorf("vault policy for self: %w", err)
		}
		rule(fmt.Sprintf("%s's own key (identity %s).", r.User, r.Identity), m+"/data/"+p+"/cib/"+r.Identity, "read")
		if r.Identity == SharedIdentity {
			rule("The password of the shared identity, for the PAM login after the handshake.", m+"/data/"+p+"/password/"+r.Identity, "read")
		}
		rule(fmt.Sprintf("%s's own record.", r.User), m+"/data/"+p+"/admins/"+r.User, "read")
	default:
		return "", fmt.Errorf("unknown vault role %q (admin, rotator, auditor or self)", r.Role)
	}
	return strings.Replace(b.String(), "\n# \n", "\n", -1), nil
}
