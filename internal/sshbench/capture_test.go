package main

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestWaits(t *testing.T) {
	const c, s = true, false
	seq := func(port int, evs ...any) []packet {
		var out []packet
		for i := 0; i < len(evs); i += 2 {
			out = append(out, packet{at: ms(evs[i].(float64)), fromClient: evs[i+1].(bool), port: port})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		pkts []packet
		want map[int]int
	}{
		{"nothing", nil, map[int]int{}},
		// SYN; SYN-ACK; banner (a wait); server banner; KEXINIT (a wait)
		{"handshake", seq(22, 0.0, c, 50.0, s, 50.5, c, 100.0, s, 100.2, c), map[int]int{22: 2}},
		// the client pipelines three requests without waiting: one wait
		// for the answers, then its FIN
		{"pipelined", seq(22, 0.0, c, 1.0, c, 2.0, c, 50.0, s, 51.0, s, 52.0, s, 52.5, c), map[int]int{22: 1}},
		// a client that sends again after a pause with no answer in
		// between did not wait for its server
		{"pause without answer", seq(22, 0.0, c, 80.0, c), map[int]int{22: 0}},
		// an answer but no pause: the client went on by itself
		{"answer without pause", seq(22, 0.0, c, 1.0, s, 2.0, c), map[int]int{22: 0}},
		// hosts are counted apart, and the order of the input does not matter
		{"two hosts", append(seq(23, 100.0, c, 0.0, c, 50.0, s), seq(22, 0.0, c, 50.0, s, 50.1, c)...), map[int]int{22: 1, 23: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := waits(tc.pkts, ms(30))
			if len(got) != len(tc.want) {
				t.Fatalf("waits = %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("waits = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// pcapFile builds a little-endian microsecond pcap of Ethernet frames.
func pcapFile(frames [][]byte, times []time.Duration) []byte {
	var b bytes.Buffer
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	b.Write(hdr)
	base := time.Unix(1_800_000_000, 0)
	for i, f := range frames {
		at := base.Add(times[i])
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[0:], uint32(at.Unix()))
		binary.LittleEndian.PutUint32(rec[4:], uint32(at.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(f)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(f)))
		b.Write(rec)
		b.Write(f)
	}
	return b.Bytes()
}

// frame is an Ethernet/IPv4/TCP frame with payload bytes of data.
func frame(src, dst string, sport, dport int, flags byte, payload int) []byte {
	f := make([]byte, 14+20+20)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+payload))
	ip[9] = 6
	copy(ip[12:], net.ParseIP(src).To4())
	copy(ip[16:], net.ParseIP(dst).To4())
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], uint16(sport))
	binary.BigEndian.PutUint16(tcp[2:], uint16(dport))
	tcp[12] = 5 << 4
	tcp[13] = flags
	return f // captured with a snap length: the payload itself is not there
}

func TestReadPcap(t *testing.T) {
	const cl, lab = "198.18.0.1", "198.18.0.2"
	const syn, ack, synack, fin = 0x02, 0x10, 0x12, 0x11
	frames := [][]byte{
		frame(cl, lab, 40000, 2222, syn, 0),
		frame(lab, cl, 2222, 40000, synack, 0),
		frame(cl, lab, 40000, 2222, ack, 0), // pure ACK: left out
		frame(cl, lab, 40000, 2222, ack, 21),
		frame("10.0.0.1", lab, 40000, 2222, ack, 5), // someone else: left out
		frame(lab, cl, 2222, 40000, ack, 21),
		frame(cl, lab, 40000, 2222, fin, 0),
	}
	times := []time.Duration{ms(10), ms(60), ms(60.1), ms(60.2), ms(61), ms(110), ms(110.5)}
	pkts, err := readPcap(bytes.NewReader(pcapFile(frames, times)), net.ParseIP(cl), net.ParseIP(lab))
	if err != nil {
		t.Fatal(err)
	}
	want := []packet{{0, true, 2222, true}, {ms(50), false, 2222, false}, {ms(50.2), true, 2222, false}, {ms(100), false, 2222, false}, {ms(100.5), true, 2222, false}}
	if len(pkts) != len(want) {
		t.Fatalf("packets %v, want %v", pkts, want)
	}
	for i := range want {
		if pkts[i] != want[i] {
			t.Errorf("packet %d = %+v, want %+v", i, pkts[i], want[i])
		}
	}
	if c := connections(pkts); c[2222] != 1 || len(c) != 1 {
		t.Errorf("connections %v, want one to 2222", c)
	}
	if w := waits(pkts, ms(30)); w[2222] != 2 {
		t.Errorf("waits %v, want 2 (the handshake and the answer before the FIN)", w)
	}
	if _, err := readPcap(bytes.NewReader([]byte("not a pcap file at all....")), nil, nil); err == nil {
		t.Error("a file that is not pcap was read")
	}
}
