package rotate

import (
	"context"
	"errors"
	"strings"

	"github.com/pcmkeys/pcmkeys/rotate/internal/deliver"

	"github.com/pcmkeys/pcmkeys/config"
	"github.com/pcmkeys/pcmkeys/distribute"
)

// A live rotation killed midway (kill -9, a power cut on the operator's
// machine) leaves maintenance mode on and the daemons possibly on mixed
// keys. Before it turns maintenance mode on, a run writes a marker on every
// full node saying what maintenance mode was before; it removes the marker
// when it has put maintenance mode back. The next run that finds a marker
// knows the maintenance mode it sees is a killed run's: it rotates again
// (every daemon that caches the key is restarted, so mixed keys end), and
// then restores maintenance mode to what the marker says, not to "on".

// resumeMarkerPath is the marker on each full node (root-owned, 0600).
const resumeMarkerPath = LiveRotationMarkerPath

// markerFile renders the marker: the value maintenance-mode had before
// ("" for unset).
func markerFile(maint string) distribute.File {
	content := "# a pcmkeys authkey rotation is under way (or was killed): maintenance-mode was\nmaintenance-mode=" + maint + "\n"
	return distribute.File{Path: resumeMarkerPath, Content: []byte(content), Owner: "root", Mode: 0o600}
}

// readMarker looks for a killed run's marker on the full nodes and
// returns the maintenance-mode value it saved.
func (lv *liveRotation) readMarker(ctx context.Context) (string, bool) {
	for _, h := range lv.e.Config.HostsWithRole(config.RoleNode) {
		conn, err := lv.e.connect(ctx, h)
		if err != nil {
			continue
		}
		b, err := conn.Read(ctx, resumeMarkerPath, "root")
		conn.Close()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "maintenance-mode="); ok {
				return strings.TrimSpace(v), true
			}
		}
	}
	return "", false
}

// writeMarker puts the marker on every full node; it must reach at least
// one, or the run does not turn maintenance mode on.
func (lv *liveRotation) writeMarker(ctx context.Context) error {
	ds := make([]deliver.Host, 0)
	for _, h := range lv.e.Config.HostsWithRole(config.RoleNode) {
		ds = append(ds, deliver.Host{Host: h, Files: []deliver.Want{deliver.NewWant(markerFile(lv.maint), "marker", "", 0, deliver.WriteAlways)}})
	}
	res, _ := lv.e.engine().Deliver(ctx, ds)
	for _, r := range res {
		if r.Status == StatusOK {
			return nil
		}
	}
	return errors.New("the marker of the run could not be written on any full node")
}

// removeMarker removes the marker from every full node.
func (lv *liveRotation) removeMarker(ctx context.Context) {
	ds := make([]deliver.Host, 0)
	for _, h := range lv.e.Config.HostsWithRole(config.RoleNode) {
		w := deliver.Want{File: distribute.File{Path: resumeMarkerPath, Owner: "root"}, Step: FileStep{Path: resumeMarkerPath, Owner: "root"}, Mode: deliver.Remove}
		ds = append(ds, deliver.Host{Host: h, Files: []deliver.Want{w}})
	}
	if _, err := lv.e.engine().Deliver(context.WithoutCancel(ctx), ds); err != nil {
		lv.log("", "remove the run's marker", "failed: "+err.Error())
	}
}
