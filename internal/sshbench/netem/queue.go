package netem

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/internal/sshlab"
)

// nfnetlink_queue's messages and attributes (linux/netfilter/nfnetlink_queue.h;
// golang.org/x/sys/unix has none of them).
const (
	nfqnlMsgPacket       = 0
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2

	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3

	nfqnlCfgCmdBind   = 1
	nfqnlCfgCmdUnbind = 2
	nfqnlCopyMeta     = 1
	nfAccept          = 1

	// queueMaxlen bounds the packets the kernel holds for us; past it
	// it drops (TCP retransmits: a run would show it as slowness).
	queueMaxlen = 1 << 17
)

// queue is one bound NFQUEUE whose packets are all accepted delay after
// they were queued. Ids rise in the order the kernel queues packets, and
// the delay is the same for all, so they leave in that order: one batch
// verdict (every id up to N) releases whatever is due.
type queue struct {
	fd    int
	num   uint16
	delay time.Duration

	due  chan pending
	stop chan struct{}
	wg   sync.WaitGroup

	held atomic.Int64 // packets released
	lost atomic.Int64 // notifications the socket dropped (ENOBUFS)
}

type pending struct {
	id uint32
	at time.Time
}

// openQueue binds queue num in the network namespace netns.
func openQueue(netns string, num uint16, delay time.Duration) (*queue, error) {
	q := &queue{fd: -1, num: num, delay: delay, due: make(chan pending, queueMaxlen), stop: make(chan struct{})}
	err := sshlab.InNetns(netns, func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		q.fd = fd
		return unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	})
	if err != nil {
		q.closeFd()
		return nil, fmt.Errorf("netem: netlink socket: %w", err)
	}
	// A deep receive buffer: a thousand hosts handshaking at once is a burst.
	unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
	// Blocking reads that wake up now and then to see whether to stop.
	unix.SetsockoptTimeval(q.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000})
	var params [5]byte // copy_range (be32) = 0, copy_mode = meta: no payload
	params[4] = nfqnlCopyMeta
	var maxlen [4]byte
	binary.BigEndian.PutUint32(maxlen[:], queueMaxlen)
	for _, m := range [][]byte{
		message(nfqnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, num, attr(nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, unix.AF_INET})),
		message(nfqnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, num, attr(nfqaCfgParams, params[:]), attr(nfqaCfgQueueMaxlen, maxlen[:])),
	} {
		if err := q.request(m); err != nil {
			q.closeFd()
			return nil, fmt.Errorf("netem: bind NFQUEUE %d: %w", num, err)
		}
	}
	q.wg.Add(2)
	go q.read()
	go q.release()
	return q, nil
}

// request sends m and waits for its acknowledgement.
func (q *queue) request(m []byte) error {
	if err := unix.Send(q.fd, m, 0); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	n, err := unix.Read(q.fd, buf)
	if err != nil {
		return err
	}
	for _, msg := range split(buf[:n]) {
		if binary.NativeEndian.Uint16(msg[4:]) == unix.NLMSG_ERROR && len(msg) >= 20 {
			if e := int32(binary.NativeEndian.Uint32(msg[16:])); e != 0 {
				return unix.Errno(-e)
			}
			return nil
		}
	}
	return fmt.Errorf("no acknowledgement")
}

// read turns the kernel's packet notifications into pending verdicts.
func (q *queue) read() {
	defer q.wg.Done()
	defer close(q.due)
	buf := make([]byte, 1<<20)
	for {
		select {
		case <-q.stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		now := time.Now()
		if err == unix.ENOBUFS {
			q.lost.Add(1)
			continue
		}
		if err != nil { // the timeout, or EINTR
			continue
		}
		for _, msg := range split(buf[:n]) {
			if binary.NativeEndian.Uint16(msg[4:]) != unix.NFNL_SUBSYS_QUEUE<<8|nfqnlMsgPacket {
				continue
			}
			if id, ok := packetID(msg); ok {
				q.due <- pending{id, now.Add(q.delay)}
			}
		}
	}
}

// release accepts every packet once its time has come.
func (q *queue) release() {
	defer q.wg.Done()
	for p := range q.due {
		if d := time.Until(p.at); d > 0 {
			time.Sleep(d)
		}
		last, n := p.id, int64(1)
	more:
		for {
			select {
			case p2, ok := <-q.due:
				if !ok {
					break more
				}
				if time.Until(p2.at) > 0 {
					q.verdict(last)
					q.held.Add(n)
					last, n = p2.id, 0
					time.Sleep(time.Until(p2.at))
				}
				last = p2.id
				n++
			default:
				break more
			}
		}
		q.verdict(last)
		q.held.Add(n)
	}
}

// verdict accepts every queued packet with an id up to id.
func (q *queue) verdict(id uint32) {
	var v [8]byte
	binary.BigEndian.PutUint32(v[0:], nfAccept)
	binary.BigEndian.PutUint32(v[4:], id)
	unix.Send(q.fd, message(nfqnlMsgVerdictBatch, unix.NLM_F_REQUEST, q.num, attr(nfqaVerdictHdr, v[:])), 0)
}

// close lets what is held go (the rules that feed the queue are gone),
// then stops, unbinds and closes.
func (q *queue) close() {
	time.Sleep(q.delay + 50*time.Millisecond)
	close(q.stop)
	q.wg.Wait()
	unix.Send(q.fd, message(nfqnlMsgConfig, unix.NLM_F_REQUEST, q.num, attr(nfqaCfgCmd, []byte{nfqnlCfgCmdUnbind, 0, 0, unix.AF_INET})), 0)
	q.closeFd()
}

func (q *queue) closeFd() {
	if q.fd >= 0 {
		unix.Close(q.fd)
		q.fd = -1
	}
}

// message is a netfilter netlink message of the queue subsystem.
func message(typ, flags, queue uint16, attrs ...[]byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint16(b[4:], unix.NFNL_SUBSYS_QUEUE<<8|typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	b[16] = unix.AF_UNSPEC
	b[17] = unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(b[18:], queue)
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	return b
}

// attr is one netlink attribute, padded to 4 bytes.
func attr(typ uint16, data []byte) []byte {
	n := 4 + len(data)
	b := make([]byte, (n+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(n))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], data)
	return b
}

// split cuts a datagram into its netlink messages.
func split(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= unix.NLMSG_HDRLEN {
		n := int(binary.NativeEndian.Uint32(b))
		if n < unix.NLMSG_HDRLEN || n > len(b) {
			break
		}
		out = append(out, b[:n])
		n = (n + 3) &^ 3
		if n > len(b) {
			break
		}
		b = b[n:]
	}
	return out
}

// packetID finds the packet id in a packet notification.
func packetID(msg []byte) (uint32, bool) {
	a := msg[unix.NLMSG_HDRLEN+4:]
	for len(a) >= 4 {
		n := int(binary.NativeEndian.Uint16(a))
		typ := binary.NativeEndian.Uint16(a[2:]) & 0x3fff
		if n < 4 || n > len(a) {
			return 0, false
		}
		if typ == nfqaPacketHdr && n >= 8 {
			return binary.BigEndian.Uint32(a[4:]), true
		}
		n = (n + 3) &^ 3
		if n > len(a) {
			break
		}
		a = a[n:]
	}
	return 0, false
}
