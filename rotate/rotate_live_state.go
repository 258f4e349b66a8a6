package rotate

import (
	"context"
	"errors"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/rotate/internal/crmmon"
)

// errNoClusterView is a read of the cluster that found no full node to ask.
var errNoClusterView = errors.New("no full node answered crm_mon")

// liveCluster reports whether a full node answers crm_mon, and which: a
// running cluster, whose authkey only the live procedure may change.
func (e *Env) liveCluster(ctx context.Context) (string, bool) {
	for _, h := range e.Config.HostsWithRole(config.RoleNode) {
		if h.Root != "" {
			continue // an image: nothing runs there
		}
		conn, err := e.connect(ctx, h)
		if err != nil {
			continue
		}
		_, err = crmmon.Read(ctx, conn)
		conn.Close()
		if err == nil {
			return h.Name, true
		}
	}
	return "", false
}
