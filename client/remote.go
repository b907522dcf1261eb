package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/frame"
	"github.com/grovekit/grove/internal/wire"
)

// Dial opens a session on a Grove cluster through the client port of any
// of its servers (addrs: host:port, tried in random order). The session
// keeps itself alive and survives the loss of its server: it reconnects to
// another one, re-attaches, re-registers its watches (delivering, once,
// the events it missed) and resends every unanswered request — the
// cluster answers a retried write with its original result.
func Dial(ctx context.Context, addrs []string, opts ...Option) (*Session, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("client: no server addresses: %w", grove.ErrBadArguments)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	r := newRemote(addrs, o)
	s, err := New(ctx, r, opts...)
	if err != nil {
		r.shutdown()
		return nil, err
	}
	return s, nil
}

// remoteReadMax is the largest reply frame a client reads: big listings
// come back in one reply.
const remoteReadMax = 256 << 20

// remote is the network Backend: one connection at a time to one server.
type remote struct {
	addrs []string
	o     options
	log   *slog.Logger

	life   context.Context // ends at Release
	cancel context.CancelFunc
	wg     sync.WaitGroup
	linkc  chan State    // StateDisconnected / StateReconnected for the Session
	gonec  chan struct{} // closed when the cluster said the session expired

	// mu guards everything below.
	mu       sync.Mutex
	cur      *rconn // the attached connection, nil while reconnecting
	xid      uint64
	calls    map[uint64]*call
	lastZxid uint64
	session  uint64
	password []byte
	timeout  time.Duration
	maxFrame int
	adminURL string // the connected server's HTTP admin address (adminURLFor)
	onEvent  func(grove.Event)
	watches  map[watchKey]bool // registered watches → Existed (data watches)
	auths    []authCred        // replayed after a reconnect
	expired  bool
	released bool
}

// call is one request waiting for its answer.
type call struct {
	xid    uint64
	typ    wire.Type
	msg    []byte // the whole message, for resending
	done   chan struct{}
	err    error
	decode func(body []byte) (zxid uint64, err error) // run by the reader on a reply
	// internal marks a request of the backend itself (re-attach steps);
	// resent marks one sent again after a reconnect.
	internal, resent bool
}

func newRemote(addrs []string, o options) *remote {
	ctx, cancel := context.WithCancel(context.Background())
	return &remote{
		addrs: append([]string(nil), addrs...), o: o, log: o.logger,
		life: ctx, cancel: cancel,
		linkc: make(chan State, 16), gonec: make(chan struct{}),
		calls: map[uint64]*call{}, watches: map[watchKey]bool{},
	}
}

var _ Backend = (*remote)(nil)

// rconn is one connection to a server. Its send queue never blocks, so no
// lock is ever held across network back-pressure.
type rconn struct {
	nc     net.Conn
	addr   string
	mu     sync.Mutex
	queue  [][]byte
	wake   chan struct{}
	closed chan struct{}
	once   sync.Once
	done   chan struct{} // closed when the reader returned
}

func (c *rconn) close() {
	c.once.Do(func() {
		close(c.closed)
		_ = c.nc.Close()
	})
}

// send queues a message for the writer.
func (c *rconn) send(msg []byte) {
	c.mu.Lock()
	c.queue = append(c.queue, msg)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// dial opens a connection and does the handshake.
func (r *remote) dial(ctx context.Context, addr string, hello *wire.Connect) (*rconn, *wire.Connected, error) {
	dctx, cancel := context.WithTimeout(ctx, r.connectTimeout())
	defer cancel()
	var nc net.Conn
	var err error
	if r.o.dialer != nil {
		nc, err = r.o.dialer(dctx, addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(dctx, "tcp", addr)
	}
	if err != nil {
		return nil, nil, err
	}
	if r.o.tls != nil {
		cfg := r.o.tls.Clone()
		if cfg.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = nc.Close()
			return nil, nil, err
		}
		nc = tc
	}
	stop := context.AfterFunc(dctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	msg, err := wire.Append(nil, wire.TConnect, 0, hello)
	if err == nil {
		err = frame.WriteFrame(nc, frame.FrameClient, msg)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	var got wire.Connected
	if err == nil {
		err = readMessage(br, func(t wire.Type, _ uint64, body []byte) error {
			switch t {
			case wire.TConnected:
				return wire.DecodeBody(body, &got)
			case wire.TError:
				var e wire.Error
				if err := wire.DecodeBody(body, &e); err != nil {
					return err
				}
				return e.Err()
			}
			return fmt.Errorf("%w: %s instead of connected", wire.ErrMalformed, t)
		})
	}
	if !stop() || err != nil {
		_ = nc.Close()
		if err == nil {
			err = dctx.Err()
		}
		return nil, nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	r.mu.Lock()
	r.timeout = time.Duration(got.TimeoutMs) * time.Millisecond // the reader's idle limit
	r.mu.Unlock()
	c := &rconn{nc: nc, addr: addr, wake: make(chan struct{}, 1), closed: make(chan struct{}), done: make(chan struct{})}
	r.wg.Go(func() { r.reader(c, br) })
	r.wg.Go(func() { r.writer(c) })
	return c, &got, nil
}

// connectTimeout bounds one connection attempt: a third of the session
// timeout, but at least a second — the server's side of a handshake (catch
// up, re-attach, a keep-alive through the leader) can take a few hundred
// milliseconds, and an attempt cut shorter fails every time, so a session
// with a short timeout could never re-attach.
func (r *remote) connectTimeout() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.timeout
	if t <= 0 {
		t = r.o.timeout
	}
	return max(t/3, time.Second)
}

// readMessage reads one frame and hands its message to fn.
func readMessage(br *bufio.Reader, fn func(t wire.Type, xid uint64, body []byte) error) error {
	f, err := frame.ReadFrame(br, remoteReadMax)
	if err != nil {
		return err
	}
	if f.Type != frame.FrameClient {
		return fmt.Errorf("%w: %s frame from a client port", wire.ErrMalformed, f.Type)
	}
	t, xid, body, err := wire.Split(f.Payload)
	if err != nil {
		return err
	}
	return fn(t, xid, body)
}

// OpenSession connects to the first server that takes it and opens the
// session there.
func (r *remote) OpenSession(ctx context.Context, timeout time.Duration, onEvent func(grove.Event)) (uint64, []byte, time.Duration, error) {
	r.mu.Lock()
	r.onEvent = onEvent
	r.mu.Unlock()
	var last error
	var allRefusedSince time.Time // when rounds of refusals began (WithFailFast)
	for attempt := 0; ; attempt++ {
		refused := 0
		for _, addr := range r.shuffled() {
			c, got, err := r.dial(ctx, addr, &wire.Connect{Version: wire.Version, TimeoutMs: timeout.Milliseconds()})
			if err != nil {
				last = err
				if errors.Is(err, syscall.ECONNREFUSED) {
					refused++
				}
				r.log.Debug("connect failed", "addr", addr, "err", err)
				continue
			}
			r.mu.Lock()
			select {
			case <-c.closed:
				// Dropped before it was attached: its reader started no
				// reconnect, so take another server.
				r.mu.Unlock()
				last = fmt.Errorf("client: connection to %s closed during the handshake", addr)
				continue
			default:
			}
			r.session, r.password = got.Session, got.Password
			r.timeout = time.Duration(got.TimeoutMs) * time.Millisecond
			r.maxFrame = got.MaxFrame
			r.adminURL = adminURLFor(got.AdminURL, addr)
			r.lastZxid = max(r.lastZxid, got.Zxid)
			r.cur = c
			r.mu.Unlock()
			return got.Session, got.Password, r.timeout, nil
		}
		if r.o.failFast && refused == len(r.addrs) {
			if allRefusedSince.IsZero() {
				allRefusedSince = time.Now()
			} else if time.Since(allRefusedSince) >= FailFastGrace {
				return 0, nil, 0, fmt.Errorf("%w: %w", ErrNoServerListening, last)
			}
		} else {
			allRefusedSince = time.Time{}
		}
		if err := r.backoff(ctx, attempt); err != nil {
			return 0, nil, 0, fmt.Errorf("client: no server took the session (last: %v): %w", last, err)
		}
	}
}

func (r *remote) shuffled() []string {
	a := append([]string(nil), r.addrs...)
	rand.Shuffle(len(a), func(i, j int) { a[i], a[j] = a[j], a[i] })
	return a
}

// backoff sleeps before the next round of connection attempts.
func (r *remote) backoff(ctx context.Context, attempt int) error {
	d := min(50*time.Millisecond<<min(attempt, 5), time.Second)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.life.Done():
		return grove.ErrSessionClosed
	}
}

// reader reads replies and events of c until it fails, then starts the
// reconnection if c was the attached connection.
func (r *remote) reader(c *rconn, br *bufio.Reader) {
	defer close(c.done)
	for {
		r.mu.Lock()
		idle := r.timeout * 2 / 3
		r.mu.Unlock()
		_ = c.nc.SetReadDeadline(time.Now().Add(max(idle, 100*time.Millisecond)))
		err := readMessage(br, r.handle)
		if err != nil {
			c.close()
			r.lost(c, err)
			return
		}
	}
}

// handle processes one message from the server.
func (r *remote) handle(t wire.Type, xid uint64, body []byte) error {
	switch t {
	case wire.TEvent:
		var ev grove.Event
		if err := wire.DecodeBody(body, &ev); err != nil {
			return err
		}
		r.mu.Lock()
		r.lastZxid = max(r.lastZxid, uint64(ev.Zxid))
		r.forgetFired(ev)
		fn := r.onEvent
		r.mu.Unlock()
		if fn != nil {
			fn(ev)
		}
		return nil
	case wire.TReply, wire.TError:
		if xid == 0 {
			var e wire.Error
			if err := wire.DecodeBody(body, &e); err != nil {
				return err
			}
			return e.Err() // the server closes the connection
		}
		r.mu.Lock()
		c := r.calls[xid]
		delete(r.calls, xid)
		r.mu.Unlock()
		if c == nil {
			return nil // abandoned, or answered before a reconnect
		}
		if t == wire.TError {
			var e wire.Error
			if err := wire.DecodeBody(body, &e); err != nil {
				return err
			}
			c.err = e.Err()
		} else if c.decode != nil {
			zxid, err := c.decode(body)
			if err != nil {
				c.err = err
			} else {
				r.mu.Lock()
				r.lastZxid = max(r.lastZxid, zxid)
				r.mu.Unlock()
			}
		}
		close(c.done)
		return nil
	}
	return fmt.Errorf("%w: unexpected %s from the server", wire.ErrMalformed, t)
}

// forgetFired drops the one-shot watches an event fired (mu held).
func (r *remote) forgetFired(ev grove.Event) {
	switch ev.Type {
	case grove.EventNodeCreated, grove.EventNodeDataChanged:
		delete(r.watches, watchKey{ev.Path, grove.WatchData})
	case grove.EventNodeDeleted:
		delete(r.watches, watchKey{ev.Path, grove.WatchData})
		delete(r.watches, watchKey{ev.Path, grove.WatchChildren})
	case grove.EventNodeChildrenChanged:
		delete(r.watches, watchKey{ev.Path, grove.WatchChildren})
	}
}

// writer sends c's queued frames, flushing when the queue runs dry.
func (r *remote) writer(c *rconn) {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var buf []byte
	for {
		select {
		case <-c.wake:
		case <-c.closed:
			return
		}
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()
		for _, msg := range batch {
			var err error
			buf, err = frame.AppendFrame(buf[:0], frame.FrameClient, msg)
			if err == nil {
				_, err = bw.Write(buf)
			}
			if err != nil {
				c.close()
				return
			}
		}
		if err := bw.Flush(); err != nil {
			c.close()
			return
		}
	}
}

// lost handles the failure of c: if it was the attached connection, the
// session is disconnected and a reconnection starts.
func (r *remote) lost(c *rconn, why error) {
	r.mu.Lock()
	if r.cur != c {
		r.mu.Unlock()
		return
	}
	r.cur = nil
	done := r.released || r.expired
	r.mu.Unlock()
	if done {
		return
	}
	if errors.Is(why, grove.ErrSessionExpired) {
		r.expire()
		return
	}
	r.log.Info("disconnected", "addr", c.addr, "err", why)
	r.link(StateDisconnected)
	r.wg.Go(func() { r.reconnect(c) })
}

func (r *remote) link(st State) {
	select {
	case r.linkc <- st:
	default: // the Session is behind on link states; it learns from calls
	}
}

// expire records that the cluster ended the session and fails every call.
func (r *remote) expire() {
	r.mu.Lock()
	if r.expired {
		r.mu.Unlock()
		return
	}
	r.expired = true
	calls := r.calls
	r.calls = map[uint64]*call{}
	cur := r.cur
	r.cur = nil
	r.mu.Unlock()
	if cur != nil {
		cur.close()
	}
	for _, c := range calls {
		c.err = grove.ErrSessionExpired
		close(c.done)
	}
	close(r.gonec)
}

// reconnect finds another server for the session: shuffled addresses,
// backoff between rounds, refusing servers behind what the session saw.
func (r *remote) reconnect(old *rconn) {
	<-old.done // the old reader has counted every zxid it saw
	for attempt := 0; ; attempt++ {
		for _, addr := range r.shuffled() {
			r.mu.Lock()
			hello := &wire.Connect{Version: wire.Version, Session: r.session, Password: r.password,
				TimeoutMs: r.timeout.Milliseconds(), LastZxid: r.lastZxid}
			r.mu.Unlock()
			c, _, err := r.dial(r.life, addr, hello)
			switch {
			case err == nil:
				if r.attach(c) {
					r.log.Info("reconnected", "addr", addr)
					r.link(StateReconnected)
					return
				}
				if r.ended() {
					return
				}
				continue // it died before it was attached: try on
			case errors.Is(err, grove.ErrSessionExpired):
				r.expire()
				return
			case r.life.Err() != nil:
				return
			}
			r.log.Debug("reconnect failed", "addr", addr, "err", err)
		}
		if r.backoff(r.life, attempt) != nil {
			return
		}
	}
}

// ended reports whether the session is released or expired.
func (r *remote) ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.released || r.expired
}

// attach makes c the session's connection: it replays the credentials,
// moves the watches and resends every unanswered request, in order, before
// any new request. It returns false if the session ended meanwhile.
func (r *remote) attach(c *rconn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released || r.expired {
		c.close()
		return false
	}
	select {
	case <-c.closed:
		// It failed before it was attached: its reader saw another current
		// connection and did not start a reconnect. The caller goes on.
		return false
	default:
	}
	xids := make([]uint64, 0, len(r.calls))
	for x, cl := range r.calls {
		switch {
		case cl.internal || cl.typ == wire.TPing:
			// A step of an earlier re-attach, or a keep-alive of the lost
			// connection: superseded (the Session pings again at once).
			delete(r.calls, x)
			cl.err = errSuperseded
			close(cl.done)
		default:
			xids = append(xids, x)
		}
	}
	sort.Slice(xids, func(i, j int) bool { return xids[i] < xids[j] })
	for _, a := range r.auths {
		r.internalLocked(c, wire.TAuth, &wire.Auth{Scheme: a.scheme, Cred: a.cred})
	}
	sw := &wire.SetWatches{Since: r.lastZxid}
	for k, existed := range r.watches {
		sw.Watches = append(sw.Watches, wire.Watch{Path: k.path, Kind: k.kind, Existed: existed})
	}
	r.internalLocked(c, wire.TSetWatches, sw)
	for _, x := range xids {
		cl := r.calls[x]
		cl.resent = true
		c.send(cl.msg)
	}
	r.cur = c
	return true
}

var errSuperseded = errors.New("client: superseded by a later reconnect")

// internalLocked sends a request of the backend's own on c; no one waits
// for it, a failure is logged (mu held).
func (r *remote) internalLocked(c *rconn, t wire.Type, body any) {
	r.xid++
	msg, err := wire.Append(nil, t, r.xid, body)
	if err != nil {
		r.log.Warn("re-attach step not sent", "step", t.String(), "err", err)
		return
	}
	cl := &call{xid: r.xid, typ: t, msg: msg, done: make(chan struct{}), internal: true}
	r.calls[r.xid] = cl
	c.send(msg)
	r.wg.Go(func() {
		select {
		case <-cl.done:
			if cl.err != nil && !errors.Is(cl.err, errSuperseded) && r.life.Err() == nil {
				// Without its credentials or watches the connection would
				// serve the session wrongly: drop it and reconnect.
				r.log.Warn("re-attach step failed; reconnecting", "step", t.String(), "err", cl.err)
				c.close()
			}
		case <-r.life.Done():
		}
	})
}

// adminURLFor returns the admin URL a server announced, its unspecified
// host (0.0.0.0, ::) replaced by the host of dialed, the address the
// client reached it at.
func adminURLFor(announced, dialed string) string {
	u, err := url.Parse(announced)
	if announced == "" || err != nil || u.Host == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return ""
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		if dh, _, err := net.SplitHostPort(dialed); err == nil {
			u.Host = net.JoinHostPort(dh, port)
		}
	}
	return u.String()
}

// adminURLOf reports the connected server's announced admin URL.
func (r *remote) adminURLOf() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.adminURL
}
