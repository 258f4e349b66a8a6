package rotate

import (
	"context"
	"errors"
	"fmt"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// Push converges hosts to the store: every file that is missing or differs
// in content, owner or mode is rewritten; files in sync are left alone.
func Push(ctx context.Context, e *Env, hosts []string) (*Report, error) {
	return e.run(ctx, workflow{
		action: "push", args: hosts,
		act: func(ctx context.Context, rep *Report) error {
			ds, _, err := e.desired(ctx, deliver.WriteIfDrift, hosts)
			if errors.Is(err, keystore.ErrNotFound) {
				return fmt.Errorf("%w (run pcmkeys init first)", err)
			}
			if err != nil {
				return err
			}
			rep.Hosts, err = e.engine().Deliver(ctx, ds)
			return err
		},
	})
}
