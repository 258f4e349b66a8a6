package rotate

import (
	"context"
	"fmt"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/filestore"
	"github.com/pcmkeys/pcmkeys/keystore/vaultstore"
)

// OpenStore opens the store the config names. create makes an absent file
// store (init does; every other command needs it to exist); a Vault mount
// must exist already.
func OpenStore(ctx context.Context, cfg *config.Config, create bool) (keystore.Store, error) {
	switch cfg.Store.Type {
	case "file":
		return filestore.Open(cfg.Store.Path, cfg.Store.Identity, filestore.Options{Create: create})
	case "vault":
		a := cfg.Store.Auth
		return vaultstore.Open(ctx, vaultstore.Options{
			Address: cfg.Store.Address, Mount: cfg.Store.Mount, Prefix: cfg.Store.Prefix,
			Auth: vaultstore.Auth{
				Method: a.Method, MountPath: a.MountPath, RoleID: a.RoleID, SecretIDFile: a.SecretIDFile,
				Username: a.Username, PasswordFile: a.PasswordFile,
			},
		})
	}
	return nil, fmt.Errorf("store type %q", cfg.Store.Type)
}
