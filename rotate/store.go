package rotate

import (
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/keystore"
	"github.com/pcmkeys/pcmkeys/keystore/filestore"
)

// ErrNoVault is returned for a vault store: this version has the file store
// only.
var ErrNoVault = errors.New("the vault store is not available in this version; use store: {type: file, path: DIR}")

// OpenStore opens the store the config names. create makes an absent file
// store (init does; every other command needs it to exist).
func OpenStore(cfg *config.Config, create bool) (keystore.Store, error) {
	switch cfg.Store.Type {
	case "file":
		return filestore.Open(cfg.Store.Path, cfg.Store.Identity, filestore.Options{Create: create})
	case "vault":
		return nil, ErrNoVault
	}
	return nil, fmt.Errorf("store type %q", cfg.Store.Type)
}
