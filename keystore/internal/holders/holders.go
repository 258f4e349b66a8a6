// Package holders renders who receives a key for a store's version
// metadata, the same way in every store: the file store and the Vault
// store both keep it in keystore.Version.Holders.
package holders

import (
	"fmt"
	"strings"
)

// MaxLen is how long the summary may be: Vault's custom metadata allows
// 512 bytes per value.
const MaxLen = 512

// Summary returns the names, comma-separated, or their count when they do
// not fit in MaxLen bytes (the admin records are the full account).
func Summary(names []string) string {
	s := strings.Join(names, ",")
	if len(s) > MaxLen {
		return fmt.Sprintf("%d admins (see admins/)", len(names))
	}
	return s
}
