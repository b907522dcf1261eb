package zkdiff

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Opcodes and special xids of ZooKeeper's client protocol.
const (
	opCreate            int32 = 1
	opDelete            int32 = 2
	opExists            int32 = 3
	opGetData           int32 = 4
	opSetData           int32 = 5
	opGetACL            int32 = 6
	opSetACL            int32 = 7
	opGetChildren       int32 = 8
	opSync              int32 = 9
	opGetChildren2      int32 = 12
	opCheck             int32 = 13
	opMulti             int32 = 14
	opCreate2           int32 = 15
	opCheckWatches      int32 = 17
	opRemoveWatches     int32 = 18
	opCreateContainer   int32 = 19
	opCreateTTL         int32 = 21
	opMultiRead         int32 = 22
	opAuth              int32 = 100
	opGetEphemerals     int32 = 103
	opGetAllChildrenNum int32 = 104
	opAddWatch          int32 = 106
	opWhoAmI            int32 = 107
	opCloseSession      int32 = -11

	xidNotification int32 = -1
	xidAuth         int32 = -4
)

// ioTimeout bounds every read and write of the tester: a server that does
// not answer within it is a difference, not a hang.
const ioTimeout = 15 * time.Second

// sessionTimeout is the timeout every session asks for; the tester never
// leaves a session idle for long.
const sessionTimeout = 30000

// errLost reports that the server closed the connection (or it broke).
var errLost = errors.New("connection lost")

// reply is one answer: its header and its body.
type reply struct {
	zxid int64
	err  int32
	body []byte
}

// event is one watch notification.
type event struct {
	typ, state int32
	path       string
}

// session is one ZooKeeper session of a run, on one server; conn is nil
// while it has no connection.
type session struct {
	addr     string
	id       int64
	passwd   []byte
	lastZxid int64
	nc       net.Conn
	br       *bufio.Reader
	xid      int32
	// watching is set once a request that may leave a watch was sent on
	// this connection: the runner then drains its notifications after
	// every operation.
	watching bool
}

// open connects s and runs the handshake: a new session if s.id is 0, else
// a re-attach. It reports whether the server granted the session.
func (s *session) open() (bool, error) {
	nc, err := net.DialTimeout("tcp", s.addr, ioTimeout)
	if err != nil {
		return false, err
	}
	s.nc, s.br, s.watching = nc, bufio.NewReader(nc), false
	passwd := s.passwd
	if passwd == nil {
		passwd = make([]byte, 16)
	}
	req := enc(nil).i32(0).i64(s.lastZxid).i32(sessionTimeout).i64(s.id).buf(passwd).boolean(false)
	if err := s.write(req); err != nil {
		s.drop()
		return false, err
	}
	b, err := s.frame()
	if err != nil {
		s.drop()
		return false, err
	}
	d := &dec{b: b}
	_, timeout, id, pw := d.i32(), d.i32(), d.i64(), d.buf()
	if d.err != nil {
		s.drop()
		return false, fmt.Errorf("zkdiff: connect response: %w", d.err)
	}
	if timeout <= 0 {
		s.drop()
		return false, nil
	}
	s.id, s.passwd = id, pw
	return true, nil
}

// drop closes the connection; the session stays for a re-attach.
func (s *session) drop() {
	if s.nc != nil {
		_ = s.nc.Close()
	}
	s.nc, s.br, s.watching = nil, nil, false
}

func (s *session) write(record enc) error {
	_ = s.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := s.nc.Write(append(enc(nil).i32(int32(len(record))), record...))
	return err
}

func (s *session) frame() ([]byte, error) {
	_ = s.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	var hdr [4]byte
	if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 64<<20 {
		return nil, fmt.Errorf("zkdiff: %d-byte frame", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(s.br, b)
	return b, err
}

// call sends one request with the next xid (or xid, if non-zero) and
// reads until its reply, collecting the notifications that come first. A
// closed or broken connection is errLost; a reply for another xid or a
// timeout is an error that ends the run.
func (s *session) call(xid, op int32, body enc) (reply, []event, error) {
	if xid == 0 {
		s.xid++
		xid = s.xid
	}
	// A failed write is not the end: the server may have closed the
	// connection while the request was written (an oversized frame), and
	// what it sent before still counts.
	_ = s.write(append(enc(nil).i32(xid).i32(op), body...))
	r, evs, err := s.readReply(xid)
	if err != nil && !errors.Is(err, errLost) {
		err = fmt.Errorf("%s to %s (session %#x): %w", opName(op), s.addr, s.id, err)
	}
	return r, evs, err
}

func (s *session) readReply(xid int32) (reply, []event, error) {
	var events []event
	for {
		b, err := s.frame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return reply{}, events, fmt.Errorf("zkdiff: no reply within %v", ioTimeout)
			}
			s.drop()
			return reply{}, events, errLost
		}
		d := &dec{b: b}
		rxid, zxid, code := d.i32(), d.i64(), d.i32()
		if d.err != nil {
			return reply{}, events, fmt.Errorf("zkdiff: reply header: %w", d.err)
		}
		if zxid > s.lastZxid {
			s.lastZxid = zxid
		}
		if rxid == xidNotification {
			ev := event{typ: d.i32(), state: d.i32(), path: d.str()}
			if d.err != nil {
				return reply{}, events, fmt.Errorf("zkdiff: notification: %w", d.err)
			}
			events = append(events, ev)
			continue
		}
		if rxid != xid {
			return reply{}, events, fmt.Errorf("zkdiff: reply for xid %d, want %d", rxid, xid)
		}
		return reply{zxid: zxid, err: code, body: d.b}, events, nil
	}
}
