package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pcmkeys/pcmkeys/internal/sshbench/netem"
)

// Round trips, counted from a packet capture on the client's end of the
// link. The delay sits on the lab's side, so what the capture shows is
// what a client sees: it sends, and its server's answer arrives a round
// trip later at the earliest. A client that had to wait for its server
// shows as two client packets at least a round trip apart with a server
// packet between them; a client that goes on by itself (a pipelined
// request) does not. Counting those waits per host, over every connection
// to it, gives the round trips the job cannot do without at that host:
// its wall time cannot be less than that many round trips (times the
// waves in which --parallel or forks take the hosts).

// packet is one TCP segment that carries something: SYN, FIN, RST or
// data (pure ACKs answer nothing and are left out).
type packet struct {
	at         time.Duration // since the capture's first packet
	fromClient bool
	port       int  // the lab host's port: which host
	open       bool // a client's SYN: a new connection
}

// connections counts, for each host port, the connections the client
// opened to it.
func connections(pkts []packet) map[int]int {
	out := map[int]int{}
	for _, p := range pkts {
		if p.open {
			out[p.port]++
		}
	}
	return out
}

// waits counts, for each host port, the times its client waited for it:
// a client packet at least gap after the client's previous one, with a
// server packet in between.
func waits(pkts []packet, gap time.Duration) map[int]int {
	byPort := map[int][]packet{}
	for _, p := range pkts {
		byPort[p.port] = append(byPort[p.port], p)
	}
	out := map[int]int{}
	for port, ps := range byPort {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].at < ps[j].at })
		var last time.Duration
		seen, answered := false, false
		n := 0
		for _, p := range ps {
			if !p.fromClient {
				answered = answered || seen
				continue
			}
			if seen && answered && p.at-last >= gap {
				n++
			}
			last, seen, answered = p.at, true, false
		}
		out[port] = n
	}
	return out
}

// readPcap reads a classic pcap file of Ethernet frames and returns its
// TCP segments between the client's address and the lab's.
func readPcap(r io.Reader, client, lab net.IP) ([]packet, error) {
	br := bufio.NewReader(r)
	var hdr [24]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	var bo binary.ByteOrder
	nano := false
	switch m := binary.LittleEndian.Uint32(hdr[:]); m {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo, nano = binary.LittleEndian, m == 0xa1b23c4d
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo, nano = binary.BigEndian, m == 0x4d3cb2a1
	default:
		return nil, fmt.Errorf("not a pcap file (magic %#x)", m)
	}
	if lt := bo.Uint32(hdr[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap link type %d, want Ethernet (1)", lt)
	}
	var out []packet
	var first time.Time
	for {
		var rec [16]byte
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return out, nil // tcpdump stopped mid-record: keep what is whole
			}
			return nil, err
		}
		frac := time.Duration(bo.Uint32(rec[4:]))
		if !nano {
			frac *= time.Microsecond
		}
		at := time.Unix(int64(bo.Uint32(rec[0:])), int64(frac))
		data := make([]byte, bo.Uint32(rec[8:]))
		if _, err := io.ReadFull(br, data); err != nil {
			return out, nil
		}
		p, ok := parseFrame(data, client, lab)
		if !ok {
			continue
		}
		if first.IsZero() {
			first = at
		}
		p.at = at.Sub(first)
		out = append(out, p)
	}
}

// parseFrame reads an Ethernet frame holding IPv4 and TCP between client
// and lab; ok is false for anything else and for pure ACKs.
func parseFrame(f []byte, client, lab net.IP) (packet, bool) {
	if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return packet{}, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ip[9] != 6 || ihl < 20 || len(ip) < ihl+20 {
		return packet{}, false
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	src, dst := net.IP(ip[12:16]), net.IP(ip[16:20])
	tcp := ip[ihl:]
	off := int(tcp[12]>>4) * 4
	flags := tcp[13]
	payload := total - ihl - off
	var p packet
	switch {
	case src.Equal(client.To4()) && dst.Equal(lab.To4()):
		p.fromClient, p.port = true, int(binary.BigEndian.Uint16(tcp[2:]))
	case src.Equal(lab.To4()) && dst.Equal(client.To4()):
		p.port = int(binary.BigEndian.Uint16(tcp[0:]))
	default:
		return packet{}, false
	}
	const fin, syn, rst, ack = 0x01, 0x02, 0x04, 0x10
	if payload <= 0 && flags&(fin|syn|rst) == 0 {
		return packet{}, false
	}
	p.open = p.fromClient && flags&(syn|ack) == syn
	return p, true
}

// capture runs tcpdump on the client's veth while f runs, and returns the
// segments it saw.
func capture(link *netem.Link, file string, f func() error) ([]packet, error) {
	cmd := link.Command("tcpdump", "-i", netem.ClientIf, "-n", "--immediate-mode", "-s", "128", "-U", "-w", file, "tcp")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("tcpdump: %w", err)
	}
	ready := make(chan string, 1)
	said := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "listening on") {
				ready <- ""
			}
		}
		ready <- strings.Join(lines, "\n")
		said <- strings.Join(lines, "\n")
	}()
	select {
	case msg := <-ready:
		if msg != "" {
			cmd.Wait()
			return nil, fmt.Errorf("tcpdump did not start: %s", msg)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, errors.New("tcpdump did not start within 10s")
	}
	ferr := f()
	time.Sleep(300 * time.Millisecond) // the last FINs and their answers
	cmd.Process.Signal(os.Interrupt)
	msg := <-said
	cmd.Wait()
	if ferr != nil {
		return nil, ferr
	}
	fh, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	pkts, err := readPcap(fh, net.ParseIP(netem.ClientAddr), net.ParseIP(netem.LabAddr))
	if err == nil && len(pkts) == 0 {
		err = fmt.Errorf("the capture %s holds no packet between the client and the lab: %s", file, msg)
	}
	return pkts, err
}
