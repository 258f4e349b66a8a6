package netem

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// TestDelay measures the link: a TCP connect is one round trip, so with
// 25 ms each way it takes 50 ms, and without a delay well under 10.
func TestDelay(t *testing.T) {
	if r := SkipReason(); r != "" {
		t.Skip(r)
	}
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var ln net.Listener
	if err := sshlab.InNetns(l.LabNetns, func() error {
		var err error
		ln, err = net.Listen("tcp", LabAddr+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	for _, c := range []struct {
		delay    time.Duration
		min, max time.Duration
	}{
		{0, 0, 10 * time.Millisecond},
		{25 * time.Millisecond, 50 * time.Millisecond, 80 * time.Millisecond},
		{5 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond},
		{0, 0, 10 * time.Millisecond},
	} {
		if err := l.SetDelay(c.delay); err != nil {
			t.Fatal(err)
		}
		rtt, err := l.ConnectRTT(addr, 9)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("delay %s: rtt %s", c.delay, rtt)
		if rtt < c.min || rtt > c.max {
			t.Errorf("delay %s each way: connect took %s, want %s–%s", c.delay, rtt, c.min, c.max)
		}
		if held, _ := l.Stats(); c.delay > 0 && held < 9*2 {
			t.Errorf("delay %s: %d packets held, want every SYN and SYN-ACK at least", c.delay, held)
		}
	}
	// The machine's own network has none of it.
	out, err := exec.Command("ip", "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), ClientIf) || strings.Contains(string(out), labIf) {
		t.Errorf("the machine's namespace has the link's interfaces:\n%s", out)
	}
	// The client's namespace reaches the lab through the veth, and only it.
	out, err = l.Command("ip", "-o", "route").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "default") || !strings.Contains(string(out), ClientIf) {
		t.Errorf("client routes:\n%s", out)
	}
}
