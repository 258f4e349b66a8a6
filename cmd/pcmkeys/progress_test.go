package main

import (
	"bytes"
	"testing"

	"github.com/pcmkeys/pcmkeys/rotate"
)

func TestProgressTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, terminal: true}
	p.update(1, 3, rotate.HostResult{Host: "n1", Status: rotate.StatusOK})
	p.update(2, 3, rotate.HostResult{Host: "n2", Status: rotate.StatusUnreachable})
	p.update(3, 3, rotate.HostResult{Host: "n3", Status: rotate.StatusOK})
	want := "\r\033[K1/3 hosts done, 0 failed (last: n1 ok)" +
		"\r\033[K2/3 hosts done, 1 failed (last: n2 unreachable)" +
		"\r\033[K3/3 hosts done, 1 failed (last: n3 ok)\n"
	if buf.String() != want {
		t.Errorf("terminal progress = %q", buf.String())
	}
}
