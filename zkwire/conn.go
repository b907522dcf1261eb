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
	"sync"
	"sync/atomic"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/outq"
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

	out      outq.Queue
	inflight chan struct{}
	work     chan *item
	pings    sync.WaitGroup

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	// Statistics for the cons and stat four-letter words.
	started           time.Time
	received, sent    atomic.Int64
	lat               latency // this connection's request latencies (cons)
	lastXid, lastZxid atomic.Int64
	sid, toMs         atomic.Int64 // session and timeout, for other goroutines
}

// item is one request on its way to its answer.
type item struct {
	xid     int32
	op      int32
	body    []byte
	ids     []grove.Identity
	pending *core.Pending
	req     *command.Request // the write begun, for the audit log
	ops     []int32          // multi: the opcode of each op
	reply   []byte           // an answer ready before the completer (auth, errors)
	last    bool             // close the connection after this answer
	start   time.Time        // when it arrived, for the latency figures
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{s: s, n: s.n, nc: nc, br: bufio.NewReaderSize(nc, 64<<10),
		inflight: make(chan struct{}, s.cfg.MaxInFlight), work: make(chan *item, s.cfg.MaxInFlight),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), started: time.Now()}
	c.out.Init(s.cfg.MaxQueued)
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
func (c *conn) close() {
	c.once.Do(func() {
		c.out.Close()
		c.cancel()
		_ = c.nc.Close()
	})
}

// finish sends msg as the last message, then ends the connection.
func (c *conn) finish(msg []byte) {
	c.once.Do(func() {
		c.out.PushFinal(msg)
		c.cancel()
	})
}

// Serve runs the connection (accept.Conn).
func (c *conn) Serve() { c.serve() }

// Close ends the connection at once (accept.Conn).
func (c *conn) Close() { c.close() }

func (c *conn) serve() {
	defer close(c.done)
	defer c.s.detach(c)
	var wg sync.WaitGroup
	wg.Go(c.writer)
	err := c.handshake()
	if err == nil {
		wg.Go(c.completer)
		err = c.reader()
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, context.Canceled) && !errors.Is(err, errDone) {
		c.s.log.Debug("zookeeper connection closed", "remote", c.nc.RemoteAddr().String(), "session", fmt.Sprintf("0x%x", c.session), "err", err)
	}
	if !errors.Is(err, errDone) {
		c.close()
	}
	c.pings.Wait()
	wg.Wait()
	_ = c.nc.Close()
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

// handshake answers a four-letter word, or reads ConnectRequest and opens
// or re-attaches the session.
func (c *conn) handshake() error {
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
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
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
	c.s.attach(c)
	c.n.Touch(info.ID)
	c.push(frame(func(e *encoder) {
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

// push queues a message; a client that does not read its messages is
// disconnected.
func (c *conn) push(msg []byte) {
	if !c.out.Push(msg) {
		c.close()
	}
}

// reader decodes requests in order; writes are handed to the node here so
// they pipeline, everything is answered by the completer in order.
func (c *conn) reader() error {
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
		select {
		case c.inflight <- struct{}{}:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
		if op == opPing {
			c.pings.Go(func() { c.ping(xid) })
			continue
		}
		it := &item{xid: xid, op: op, body: d.b, ids: c.ids, start: time.Now()}
		switch {
		case op == opAuth:
			c.auth(it)
		case isWrite(op):
			if err := c.beginWrite(it); err != nil {
				return err
			}
		case op == opCloseSession:
			c.seq++
			it.pending, err = c.n.BeginOrReject(c.ctx, &command.Request{Session: uint64(c.session), Seq: c.seq, Op: command.OpCloseSession})
			if err != nil {
				return err
			}
			it.last = true
		}
		select {
		case c.work <- it:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
		if it.last {
			return errDone
		}
	}
}

// ping answers a keep-alive. The session's clock is the leader's; a
// session that expired meanwhile ends the connection, so the client
// reconnects and learns it (as ZooKeeper closes an expired session's
// connection).
func (c *conn) ping(xid int32) {
	defer func() { <-c.inflight }()
	c.n.Touch(uint64(c.session))
	if _, ok, err := c.n.SessionInfo(uint64(c.session)); err == nil && !ok {
		c.close()
		return
	}
	c.push(frame(func(e *encoder) { e.replyHeader(xid, int64(c.n.AppliedIndex()), 0) }))
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
	it.reply = frame(func(e *encoder) { e.replyHeader(it.xid, 0, code) })
	it.last = code != 0
}

// completer answers requests in order.
func (c *conn) completer() {
	for {
		var it *item
		select {
		case it = <-c.work:
		case <-c.ctx.Done():
			c.drain()
			return
		}
		// A read may set a watch: hold events back until its reply is
		// queued, so no event the watch fires overtakes the reply (ZooKeeper
		// clients register the watcher when the reply arrives).
		read := it.pending == nil && it.reply == nil
		if read {
			c.out.Hold()
		}
		msg, zxid, err := c.answer(it)
		if err != nil {
			c.close()
			c.drain()
			return
		}
		c.sent.Add(1)
		c.s.sent.Add(1)
		c.lat.add(it.start)
		c.s.lat.add(it.start)
		if observe := c.s.cfg.ObserveRequest; observe != nil {
			observe(opName(it.op), time.Since(it.start))
		}
		if it.last {
			c.finish(msg)
			c.drain()
			return
		}
		if read {
			if !c.out.Release(msg, zxid) {
				c.close()
			}
		} else {
			c.push(msg)
		}
		<-c.inflight
	}
}

func (c *conn) drain() {
	for {
		select {
		case it := <-c.work:
			if it.pending != nil {
				it.pending.Cancel()
			}
		default:
			return
		}
	}
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
	if !c.out.PushEvent(msg, uint64(ev.Zxid)) { // zxids are raft indexes
		c.close()
	}
}

// writer sends queued messages, flushing when the queue runs dry.
func (c *conn) writer() {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	for {
		batch, last := c.out.Take()
		for _, msg := range batch {
			_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := bw.Write(msg); err != nil {
				c.close()
				return
			}
		}
		if err := bw.Flush(); err != nil {
			c.close()
			return
		}
		if last {
			_ = c.nc.Close()
			return
		}
	}
}
