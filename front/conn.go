package front

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/connpipe"
	"github.com/grovekit/grove/internal/frame"
	"github.com/grovekit/grove/internal/wire"
)

// conn is one client connection and the session attached to it.
type conn struct {
	s  *Server
	n  *core.Node
	nc net.Conn
	br *bufio.Reader

	session uint64
	timeout time.Duration
	ids     []grove.Identity // the connection's identities (reader-owned)

	connpipe.Pipe[*workItem]
}

// workItem is one request on its way to its answer.
type workItem struct {
	connpipe.Request // Start is set only with Config.ObserveRequest
	xid              uint64
	typ              wire.Type
	body             []byte
	req              *command.Request // the write begun, for the audit log
	ids              []grove.Identity // the connection's identities when it arrived
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, n: s.n, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	c.Init(nc, s.limits, func() { c.close(errQueueFull) })
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		c.ids = []grove.Identity{{Scheme: "ip", ID: ap.Addr().Unmap().String()}}
	}
	return c
}

// close ends the connection once; why (if not nil) is sent to the client
// as a connection error first, best effort.
func (c *conn) close(why error) {
	var final []byte
	if why != nil {
		final, _ = wire.Append(nil, wire.TError, 0, wire.ErrorOf(why))
	}
	c.Pipe.Close(final)
}

// Serve runs the connection (accept.Conn): the pipeline with this
// protocol as its codec.
func (c *conn) Serve() { c.Run(c, func() { c.s.detach(c) }) }

// Close ends the connection (accept.Conn).
func (c *conn) Close() { c.close(nil) }

// End closes the connection after err (connpipe.Codec).
func (c *conn) End(err error) {
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, context.Canceled) {
		c.s.log.Debug("client connection closed", "remote", c.nc.RemoteAddr().String(), "session", fmt.Sprintf("%x", c.session), "err", err)
	}
	if grove.ErrorCode(err) != grove.CodeSystemError {
		c.close(err) // the client's own fault, or a verdict for it: tell it
	} else {
		c.close(nil)
	}
}

// WriteMsg writes a message as a client-port frame (connpipe.Codec).
func (c *conn) WriteMsg(w io.Writer, msg []byte) error {
	return frame.WriteFrame(w, frame.FrameClient, msg)
}

// Answered reports the request's latency (connpipe.Codec).
func (c *conn) Answered(it *workItem) {
	if observe := c.s.cfg.ObserveRequest; observe != nil {
		observe(it.opName(), time.Since(it.Start))
	}
}

// maxConnectFrame bounds the frame read before the handshake (a Connect
// with its credentials), so a stranger that has not opened a session cannot
// make the server buffer MaxFrame per connection.
const maxConnectFrame = 64 << 10

// readMsg reads one client message of at most max bytes, allowing the
// session timeout (or, before the handshake, a fixed 10 s) since the last
// one.
func (c *conn) readMsg(max int) (wire.Type, uint64, []byte, error) {
	idle := c.timeout
	if idle == 0 {
		idle = 10 * time.Second
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(idle))
	f, err := frame.ReadFrame(c.br, max)
	if err != nil {
		if errors.Is(err, frame.ErrFrameTooLarge) {
			return 0, 0, nil, fmt.Errorf("%w: %v", grove.ErrTooLarge, err)
		}
		if errors.Is(err, frame.ErrBadVersion) || errors.Is(err, frame.ErrUnknownFrame) {
			return 0, 0, nil, fmt.Errorf("%w: %v", grove.ErrBadRequest, err)
		}
		return 0, 0, nil, err
	}
	if f.Type != frame.FrameClient {
		return 0, 0, nil, fmt.Errorf("%w: %s frame on the client port", grove.ErrBadRequest, f.Type)
	}
	t, xid, body, err := wire.Split(f.Payload)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("%w: %v", grove.ErrBadRequest, err)
	}
	return t, xid, body, nil
}

// Handshake reads Connect, opens or re-attaches the session and answers
// Connected (connpipe.Codec).
func (c *conn) Handshake() error {
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("front: TLS handshake: %w", err)
		}
		_ = tc.SetDeadline(time.Time{})
		// A verified client certificate names the client, as on
		// ZooKeeper's secure port: the x509 identity is its subject.
		if st := tc.ConnectionState(); len(st.VerifiedChains) > 0 {
			c.ids = append(c.ids, grove.Identity{Scheme: "x509", ID: st.VerifiedChains[0][0].Subject.String()})
		}
	}
	t, _, body, err := c.readMsg(min(maxConnectFrame, c.s.cfg.MaxFrame))
	if err != nil {
		return err
	}
	if t != wire.TConnect {
		return fmt.Errorf("%w: %s before connect", grove.ErrBadRequest, t)
	}
	var req wire.Connect
	if err := wire.DecodeBody(body, &req); err != nil {
		return fmt.Errorf("%w: %v", grove.ErrBadRequest, err)
	}
	if req.Version != wire.Version {
		return fmt.Errorf("%w: protocol version %d, this server speaks %d", grove.ErrBadRequest, req.Version, wire.Version)
	}
	ctx, cancel := context.WithTimeout(c.Ctx, 10*time.Second)
	defer cancel()
	if err := c.n.CatchUp(ctx, req.LastZxid, c.s.cfg.BehindWait); err != nil {
		return err
	}
	var info core.SessionInfo
	if req.Session == 0 {
		info, err = c.n.CreateSession(ctx, time.Duration(req.TimeoutMs)*time.Millisecond)
	} else {
		info, err = c.n.Reattach(req.Session, req.Password)
	}
	if err != nil {
		return err
	}
	c.session, c.timeout = info.ID, info.Timeout
	if err := c.s.attach(ctx, c); err != nil {
		return err
	}
	left := c.keepAlive(ctx)
	msg, err := wire.Append(nil, wire.TConnected, 0, &wire.Connected{
		Session: info.ID, Password: info.Password, TimeoutMs: info.Timeout.Milliseconds(),
		LeftMs: left.Milliseconds(), Server: c.n.ID(), Zxid: c.n.AppliedIndex(), MaxFrame: c.s.cfg.MaxFrame,
		AdminURL: c.s.cfg.AdminURL,
	})
	if err != nil {
		return err
	}
	if req.Session != 0 && left == 0 {
		// No leader confirmed the session: it may have expired meanwhile;
		// the client learns it on its next ping.
		c.s.log.Debug("re-attached session without a confirmed deadline", "session", fmt.Sprintf("%x", info.ID))
	}
	c.Push(msg)
	return nil
}

// keepAlive refreshes the session and returns the time it surely has left,
// or 0 when no leader answered within a sixth of the timeout. (Clients
// ping every third of the timeout and give a silent server two thirds:
// answering within a sixth keeps a live server from looking dead while
// the cluster elects a leader.)
func (c *conn) keepAlive(ctx context.Context) time.Duration {
	c.n.Touch(c.session)
	kctx, cancel := context.WithTimeout(ctx, max(c.timeout/6, 20*time.Millisecond))
	defer cancel()
	left, err := c.n.KeepAlive(kctx, c.session)
	if err != nil {
		return 0
	}
	return left
}

// Reader decodes requests in order (connpipe.Codec). Writes are begun
// here, so they are proposed in session order without waiting for each
// other; everything else is answered by the completer in order.
func (c *conn) Reader() error {
	for {
		t, xid, body, err := c.readMsg(c.s.cfg.MaxFrame)
		if err != nil {
			return err
		}
		if !t.IsRequest() {
			return fmt.Errorf("%w: unknown request type %s", grove.ErrBadRequest, t)
		}
		if xid == 0 {
			return fmt.Errorf("%w: request without an xid", grove.ErrBadRequest)
		}
		if err := c.Admit(); err != nil {
			return err
		}
		if t == wire.TPing {
			// Out of band: a stuck write must not make the server look dead.
			c.Pings.Go(func() { c.ping(xid) })
			continue
		}
		it := &workItem{xid: xid, typ: t, body: body, ids: c.ids}
		if c.s.cfg.ObserveRequest != nil {
			it.Start = time.Now()
		}
		switch t {
		case wire.TWrite:
			if err := c.beginWrite(it); err != nil {
				return err
			}
		case wire.TAuth:
			it.Reply = c.auth(xid, body)
		}
		if err := c.Queue(it); err != nil {
			return err
		}
	}
}

// beginWrite decodes a write and hands it to the node; a request the node
// refuses up front gets its error as the reply. Only a stopping node fails
// the connection (the client then resends elsewhere).
func (c *conn) beginWrite(it *workItem) error {
	var req command.Request
	if err := wire.DecodeBody(it.body, &req); err != nil {
		return fmt.Errorf("%w: %v", grove.ErrBadRequest, err)
	}
	req.Session, req.Identities = c.session, c.ids
	p, err := c.n.BeginOrReject(c.Ctx, &req)
	switch {
	case err == nil:
		it.Pending, it.req = p, &req
	case errors.Is(err, grove.ErrStopped) || c.Ctx.Err() != nil:
		return err
	default:
		it.Reply = errorMsg(it.xid, err)
	}
	return nil
}

// auth resolves credentials into an identity of the connection.
func (c *conn) auth(xid uint64, body []byte) []byte {
	var a wire.Auth
	if err := wire.DecodeBody(body, &a); err != nil {
		return errorMsg(xid, fmt.Errorf("%w: %v", grove.ErrBadRequest, err))
	}
	id, err := c.n.Authenticate(a.Scheme, a.Cred)
	if err != nil {
		return errorMsg(xid, err)
	}
	dup := false
	for _, have := range c.ids {
		dup = dup || have == id
	}
	if !dup {
		c.ids = append(c.ids[:len(c.ids):len(c.ids)], id)
	}
	return replyMsg(xid, &id)
}

// ping answers a keep-alive with the session's time left.
func (c *conn) ping(xid uint64) {
	defer c.Release()
	left := c.keepAlive(c.Ctx)
	if left == 0 {
		if _, ok, err := c.n.SessionInfo(c.session); err == nil && !ok {
			c.Push(errorMsg(xid, grove.ErrSessionExpired))
			return
		}
	}
	c.Push(replyMsg(xid, &wire.Left{LeftMs: left.Milliseconds()}))
}

// opName names the item's operation for metrics: a write's kind
// ("create", "setData", ...) or the message type ("read", "sync", ...).
func (it *workItem) opName() string {
	if it.req != nil {
		return it.req.Op.String()
	}
	return it.typ.String()
}

// readZxid is the zxid of the state a read's answer reflects: events of
// changes up to it go before the answer. An answer without one (an error,
// a watch request) reflects no new state: 0 keeps every held event after it.
func readZxid(res any) uint64 {
	switch r := res.(type) {
	case *wire.ReadResult:
		return r.Zxid
	case *wire.Zxid:
		return r.Zxid
	}
	return 0
}

// answer runs one request and returns its reply. An error means the
// connection must end without an answer (the node stopped or the
// connection closed), so the client resends the request elsewhere.
func (c *conn) Answer(it *workItem) ([]byte, uint64, error) {
	msg, res, err := c.answer(it)
	return msg, readZxid(res), err
}

func (c *conn) answer(it *workItem) ([]byte, any, error) {
	if it.Reply != nil {
		return it.Reply, nil, nil
	}
	ctx := c.Ctx
	var res any
	var err error
	switch it.typ {
	case wire.TWrite:
		var r *command.Result
		r, err = it.Pending.Wait(ctx)
		if err == nil {
			if a := c.s.cfg.Audit; a != nil { // no address string per write unless auditing
				a.Request("native", c.nc.RemoteAddr().String(), it.req, r)
			}
			if rej := it.Pending.Rejection(); rej != nil && r.Code == grove.ErrorCode(rej) {
				// Refused before raft: the whole message (sizes, limits)
				// rather than the bare code its result carries.
				return errorMsg(it.xid, rej), nil, nil
			}
		}
		res = r
	case wire.TRead:
		res, err = c.read(ctx, it.body, it.ids)
	case wire.TSync:
		var z uint64
		z, err = c.n.Sync(ctx)
		res = &wire.Zxid{Zxid: z}
	case wire.TAddWatch, wire.TRemoveWatches:
		var w wire.Watch
		if err = wire.DecodeBody(it.body, &w); err != nil {
			err = fmt.Errorf("%w: %v", grove.ErrBadRequest, err)
		} else if it.typ == wire.TAddWatch {
			if w.Kind != grove.WatchPersistent && w.Kind != grove.WatchPersistentRecursive {
				err = fmt.Errorf("front: add watch of kind %s: %w", w.Kind, grove.ErrBadArguments)
			} else {
				_, err = c.n.AddWatch(c.session, w.Path, w.Kind, it.ids, c)
			}
		} else {
			err = c.n.RemoveWatches(c.session, w.Path, w.Kind)
		}
	case wire.TSetWatches:
		res, err = c.setWatches(ctx, it.body, it.ids)
	}
	if err != nil {
		if errors.Is(err, grove.ErrStopped) || ctx.Err() != nil {
			return nil, nil, err
		}
		return errorMsg(it.xid, err), nil, nil
	}
	return replyMsg(it.xid, res), res, nil
}

func (c *conn) read(ctx context.Context, body []byte, ids []grove.Identity) (*wire.ReadResult, error) {
	var r wire.Read
	if err := wire.DecodeBody(body, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", grove.ErrBadRequest, err)
	}
	var w core.Watcher
	if r.Watch {
		w = c
	}
	res, err := c.n.ServeRead(ctx, &client.ReadRequest{
		Kind: client.ReadKind(r.Kind), Session: c.session, Identities: ids, Path: r.Path,
		After: r.After, Limit: r.Limit, MinZxid: r.MinZxid, Linearizable: r.Linearizable, Watch: r.Watch,
	}, w)
	if err != nil {
		return nil, err
	}
	return &wire.ReadResult{Data: res.Data, Stat: res.Stat, Exists: res.Exists, Names: res.Names,
		More: res.More, ACL: res.ACL, Count: res.Count, Zxid: res.Zxid}, nil
}

func (c *conn) setWatches(ctx context.Context, body []byte, ids []grove.Identity) (*wire.Zxid, error) {
	var sw wire.SetWatches
	if err := wire.DecodeBody(body, &sw); err != nil {
		return nil, fmt.Errorf("%w: %v", grove.ErrBadRequest, err)
	}
	specs := make([]core.WatchSpec, len(sw.Watches))
	for i, w := range sw.Watches {
		specs[i] = core.WatchSpec{Path: w.Path, Kind: w.Kind, Existed: w.Existed}
	}
	z, err := c.n.RestoreWatches(ctx, c.session, sw.Since, specs, ids, c)
	if err != nil {
		return nil, err
	}
	return &wire.Zxid{Zxid: z}, nil
}

// errQueueFull disconnects a client that does not read its messages; it
// reconnects and gets what its watches missed from their re-registration.
var errQueueFull = fmt.Errorf("%w: %w", grove.ErrTooLarge, connpipe.ErrQueueFull)

// Deliver queues a watch event of the session (core.Watcher). A client too
// slow to take its events is disconnected.
func (c *conn) Deliver(ev grove.Event) {
	msg, err := wire.Append(nil, wire.TEvent, 0, &ev)
	if err != nil {
		return
	}
	c.PushEvent(msg, uint64(ev.Zxid)) // zxids are raft indexes
}

func replyMsg(xid uint64, body any) []byte {
	msg, err := wire.Append(nil, wire.TReply, xid, body)
	if err != nil {
		return errorMsg(xid, err)
	}
	return msg
}

func errorMsg(xid uint64, err error) []byte {
	msg, _ := wire.Append(nil, wire.TError, xid, wire.ErrorOf(err))
	return msg
}
