package rotate

import (
	"context"
	"fmt"
	"os"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// withLock runs fn holding the cluster's lock, unless this is a dry run.
func (e *Env) withLock(ctx context.Context, action string, fn func() error) error {
	if e.DryRun {
		return fn()
	}
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s@%s pid %d (%s)", e.Operator, host, os.Getpid(), action)
	lease, err := e.Store.Lock(ctx, owner, keystore.DefaultLockTTL)
	if err != nil {
		return err
	}
	defer func() {
		if err := e.Store.Unlock(context.WithoutCancel(ctx), lease); err != nil {
			e.log().Error("release the cluster lock", "err", err)
		}
	}()
	return fn()
}
