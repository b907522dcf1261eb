package zkwire

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/connpipe"
)

// conn is one ZooKeeper client connection.
type conn struct {
	s  *Server
	n  *core.Node
	nc net.Conn
	br *bufio.Reader

	session int64
	timeout time.Duration
	seq     uint64           // the session's last request number (reader-owned)
	ids     []grove.Identity // reader-owned; the completer gets copies

	connpipe.Pipe[*item]

	// Statistics for the cons and stat four-letter words.
	started           time.Time
	received, sent    atomic.Int64
	lat               latency // this connection's request latencies (cons)
	lastXid, lastZxid atomic.Int64
	sid, toMs         atomic.Int64 // session and timeout, for other goroutines
}

// item is one request on its way to its answer.
type item struct {
	connpipe.Request
	xid  int32
	op   int32
	body []byte
	ids  []grove.Identity
	req  *command.Request // the write begun, for the audit log
	ops  []int32          // multi: the opcode of each op
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, n: s.n, nc: nc, br: bufio.NewReaderSize(nc, 64<<10), started: time.Now()}
	c.Init(nc, s.limits, nil)
	c.lat.reset()
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		c.ids = []grove.Identity{{Scheme: "ip", ID: ap.Addr().Unmap().String()}}
	}
	return c
}

// tlsHandshake completes the TLS handshake of a secure-port connection
// within 10 s and adds the x509 identity of a verified client certificate.
func (c *conn) tlsHandshake(tc *tls.Conn) error {
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("zkwire: TLS handshake: %w", err)
	}
	_ = tc.SetWriteDeadline(time.Time{})
	if st := tc.ConnectionState(); len(st.VerifiedChains) > 0 {
		c.ids = append(c.ids, grove.Identity{Scheme: "x509", ID: st.VerifiedChains[0][0].Subject.String()})
	}
	return nil
}

// close ends the connection at once.
func (c *conn) close() { c.Pipe.Close(nil) }

// finish sends msg as the last message, then ends the connection.
func (c *conn) finish(msg []byte) { c.Pipe.Close(msg) }

// Serve runs the connection (accept.Conn): the pipeline with ZooKeeper's
// protocol as its codec.
func (c *conn) Serve() { c.Run(c, func() { c.s.detach(c) }) }

// Close ends the connection at once (accept.Conn).
func (c *conn) Close() { c.close() }

// End closes the connection after err, unless it already queued its last
// message (connpipe.Codec).
func (c *conn) End(err error) {
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, context.Canceled) && !errors.Is(err, errDone) {
		c.s.log.Debug("zookeeper connection closed", "remote", c.nc.RemoteAddr().String(), "session", fmt.Sprintf("0x%x", c.session), "err", err)
	}
	if !errors.Is(err, errDone) {
		c.close()
	}
}

// WriteMsg writes msg as it is: ZooKeeper messages are framed when built
// (connpipe.Codec).
func (c *conn) WriteMsg(w io.Writer, msg []byte) error {
	_, err := w.Write(msg)
	return err
}

// Answered counts the request for the four-letter words and metrics
// (connpipe.Codec).
func (c *conn) Answered(it *item) {
	c.sent.Add(1)
	c.s.sent.Add(1)
	c.lat.add(it.Start)
	c.s.lat.add(it.Start)
	if observe := c.s.cfg.ObserveRequest; observe != nil {
		observe(opName(it.op), time.Since(it.Start))
	}
}

// errDone ends a connection that already queued its last message.
var errDone = errors.New("zkwire: connection finished")

// maxConnectFrame bounds the frame read before the handshake: a
// ConnectRequest is under 64 bytes, so a stranger that has not opened a
// session cannot make the server buffer jute.maxbuffer per connection.
const maxConnectFrame = 4 << 10

// readFrame reads one length-prefixed frame of at most max bytes, allowing
// idle for the wait.
func (c *conn) readFrame(idle time.Duration, max int) ([]byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(idle))
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return nil, err
	}
	n := int64(int32(binary.BigEndian.Uint32(hdr[:])))
	if n < 0 || n > int64(max) {
		return nil, fmt.Errorf("%w: frame of %d bytes, the limit is %d", grove.ErrTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		return nil, err
	}
	c.received.Add(1)
	c.s.received.Add(1)
	return b, nil
}

// Handshake answers a four-letter word, or reads ConnectRequest and opens
// or re-attaches the session (connpipe.Codec).
func (c *conn) Handshake() error {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if tc, ok := c.nc.(*tls.Conn); ok {
		if err := c.tlsHandshake(tc); err != nil {
			return err
		}
	}
	peek, err := c.br.Peek(4)
	if err != nil {
		return err
	}
	if cmd := string(peek); isFourLetterWord(cmd) {
		if cmd == "stmk" {
			// stmk carries the new mask: 8 bytes after the word.
			var b [12]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return err
			}
			c.s.traceMask.Store(int64(binary.BigEndian.Uint64(b[4:]))) // a mask, bit for bit
		}
		c.finish([]byte(c.s.fourLetterWord(cmd)))
		return errDone
	}
	b, err := c.readFrame(10*time.Second, maxConnectFrame)
	if err != nil {
		return err
	}
	d := decoder{b: b}
	_ = d.int32() // protocol version
	lastZxid := d.int64()
	timeoutMs := d.int32()
	session := d.int64()
	password := d.buffer()
	withReadOnly := d.err == nil && len(d.b) > 0 // newer clients add canBeReadOnly
	if withReadOnly {
		_ = d.bool()
	}
	if d.err != nil {
		return d.err
	}
	ctx, cancel := context.WithTimeout(c.Ctx, 10*time.Second)
	defer cancel()
	if err := c.n.CatchUp(ctx, uint64(max(lastZxid, 0)), c.s.cfg.BehindWait); err != nil {
		return err // ZooKeeper closes without an answer; the client moves on
	}
	var info core.SessionInfo
	if session == 0 {
		info, err = c.n.CreateSession(ctx, time.Duration(timeoutMs)*time.Millisecond)
	} else if info, err = c.n.Reattach(uint64(session), password); err == nil {
		c.seq, err = c.n.Fence(ctx, info.ID)
	}
	if errors.Is(err, grove.ErrSessionExpired) {
		// As ZooKeeper: timeout 0 tells the client its session is gone.
		c.finish(frame(func(e *encoder) {
			e.int32(0)
			e.int32(0)
			e.int64(0)
			e.buffer(make([]byte, 16))
			if withReadOnly {
				e.bool(false)
			}
		}))
		return errDone
	}
	if err != nil {
		return err
	}
	c.session, c.timeout = int64(info.ID), info.Timeout
	c.sid.Store(c.session)
	c.toMs.Store(info.Timeout.Milliseconds())
	if err := c.s.attach(ctx, c); err != nil {
		return err
	}
	c.n.Touch(info.ID)
	c.Push(frame(func(e *encoder) {
		e.int32(0)
		e.int32(int32(info.Timeout.Milliseconds()))
		e.int64(int64(info.ID))
		e.buffer(info.Password)
		if withReadOnly {
			e.bool(false)
		}
	}))
	return nil
}

// Reader decodes requests in order (connpipe.Codec); writes are handed to
// the node here so they pipeline, everything is answered by the completer
// in order.
func (c *conn) Reader() error {
	for {
		b, err := c.readFrame(c.timeout, c.s.cfg.MaxBuffer)
		if err != nil {
			return err
		}
		d := decoder{b: b}
		xid, op := d.int32(), d.int32()
		if d.err != nil {
			return d.err
		}
		c.lastXid.Store(int64(xid))
		if err := c.Admit(); err != nil {
			return err
		}
		if op == opPing {
			c.Pings.Go(func() { c.ping(xid) })
			continue
		}
		it := &item{xid: xid, op: op, body: d.b, ids: c.ids}
		it.Start = time.Now()
		switch {
		case op == opAuth:
			c.auth(it)
		case isWrite(op):
			if err := c.beginWrite(it); err != nil {
				return err
			}
		case op == opCloseSession:
			c.seq++
			it.Pending, err = c.n.BeginOrReject(c.Ctx, &command.Request{Session: uint64(c.session), Seq: c.seq, Op: command.OpCloseSession})
			if err != nil {
				return err
			}
			it.Last = true
		}
		if err := c.Queue(it); err != nil {
			return err
		}
		if it.Last {
			return errDone
		}
	}
}

// ping answers a keep-alive. The session's clock is the leader's; a
// session that expired meanwhile ends the connection, so the client
// reconnects and learns it (as ZooKeeper closes an expired session's
// connection).
func (c *conn) ping(xid int32) {
	defer c.Release()
	c.n.Touch(uint64(c.session))
	if _, ok, err := c.n.SessionInfo(uint64(c.session)); err == nil && !ok {
		c.close()
		return
	}
	c.Push(frame(func(e *encoder) { e.replyHeader(xid, int64(c.n.AppliedIndex()), 0) }))
}

// auth resolves credentials (digest, or super for operators). A failure is
// answered and closes the connection, as in ZooKeeper.
func (c *conn) auth(it *item) {
	d := decoder{b: it.body}
	_ = d.int32() // type
	scheme := d.string()
	cred := d.buffer()
	var code grove.Code
	if d.err != nil {
		code = grove.CodeMarshallingError
	} else if id, err := c.n.Authenticate(scheme, cred); err != nil {
		code = grove.CodeAuthFailed
	} else {
		dup := false
		for _, have := range c.ids {
			dup = dup || have == id
		}
		if !dup {
			c.ids = append(c.ids[:len(c.ids):len(c.ids)], id)
		}
	}
	it.Reply = frame(func(e *encoder) { e.replyHeader(it.xid, 0, code) })
	it.Last = code != 0
}

// Deliver sends a watch notification (core.Watcher): xid -1, the zxid of
// the change, SyncConnected.
func (c *conn) Deliver(ev grove.Event) {
	msg := frame(func(e *encoder) {
		e.replyHeader(xidNotification, ev.Zxid, 0)
		e.int32(int32(ev.Type))
		e.int32(stateSyncConnected)
		e.string(ev.Path)
	})
	c.PushEvent(msg, uint64(ev.Zxid)) // zxids are raft indexes
}
