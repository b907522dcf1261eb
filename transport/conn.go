package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/grovekit/grove/internal/mpguard"

	"github.com/grovekit/grove/core"
)

// Buffer sizes of a connection's reader and writer, by direction.
const (
	bigBuffer   = 64 << 10 // the side that carries the data
	smallBuffer = 4 << 10  // the side that carries a hello and an ack
)

// hello is the payload of the first frame each way on every connection,
// and, with a cluster key, of the dialler's second frame (its proof).
type hello struct {
	From    uint64 `msgpack:"f"` // sender's raft ID
	To      uint64 `msgpack:"t"` // the raft ID the sender expects to talk to
	Version uint8  `msgpack:"v"` // sender's ProtocolVersion
	// Nonce is the sender's fresh challenge (cluster key only).
	Nonce []byte `msgpack:"n,omitempty"`
	// Proof is the sender's answer to both challenges (cluster key only):
	// see keyProof.
	Proof []byte `msgpack:"p,omitempty"`
}

// handshakeMaxFrame bounds every frame read before a connection is
// authenticated: a hello is tens of bytes, so a stranger cannot make the
// node buffer megabytes per connection.
const handshakeMaxFrame = 1 << 10

// conn is one established connection, after TLS and hello.
type conn struct {
	net.Conn          // the TLS connection when TLS is on
	raw      net.Conn // the TCP connection underneath
	fr       frameReader
	fw       frameWriter
	release  func() // stops the context watch that closes the connection
}

// newConn wraps an established connection; its reader takes frames of at
// most handshakeMaxFrame until the handshake raises the limit.
func newConn(nc net.Conn, readBuf, writeBuf int) *conn {
	return &conn{
		Conn:    nc,
		fr:      frameReader{r: bufio.NewReaderSize(nc, readBuf), max: handshakeMaxFrame},
		fw:      frameWriter{w: bufio.NewWriterSize(nc, writeBuf)},
		release: func() {},
	}
}

// close closes the connection and waits for its context watch.
func (c *conn) close() {
	_ = c.Close() // the embedded net.Conn
	c.release()
}

// sendHello writes and flushes a hello frame.
func (c *conn) sendHello(h hello) error {
	h.Version = ProtocolVersion
	b, err := msgpack.Marshal(h)
	if err != nil {
		return err
	}
	if err := c.fw.write(FrameHello, b); err != nil {
		return err
	}
	return c.fw.w.Flush()
}

// readHello reads the peer's hello and checks that it comes from a valid
// node, speaks our version and is addressed to self; a hello addressed to
// another node is returned with ErrWrongPeer.
func (c *conn) readHello(self uint64) (hello, error) {
	f, err := c.fr.frame()
	if err != nil {
		return hello{}, err
	}
	if f.Type != FrameHello {
		return hello{}, fmt.Errorf("%w: %v before hello", ErrUnexpectedFrame, f.Type)
	}
	var h hello
	if err := mpguard.Unmarshal(f.Payload, &h); err != nil {
		return hello{}, fmt.Errorf("%w: hello: %w", ErrBadPayload, err)
	}
	switch {
	case h.Version != ProtocolVersion:
		return hello{}, fmt.Errorf("%w: hello version %d", ErrBadVersion, h.Version)
	case h.From == 0:
		return hello{}, fmt.Errorf("%w: hello from raft ID 0", ErrBadPayload)
	case h.To != self:
		return h, fmt.Errorf("%w: hello from %d is addressed to %d, this is %d", ErrWrongPeer, h.From, h.To, self)
	}
	return h, nil
}

// connect dials peer to at addr and runs the TLS handshake and the hello
// exchange within HandshakeTimeout. The connection is closed when ctx ends.
func (t *TCP) connect(ctx context.Context, to uint64, addr string) (*conn, error) {
	deadline := time.Now().Add(t.cfg.HandshakeTimeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	raw, err := t.cfg.Dialer(dctx, addr)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("transport: dial peer %d at %s: %w", to, addr, err)
	}
	release := closeOnDone(ctx, raw)
	c, err := t.handshakeOut(raw, to, addr, deadline)
	if err != nil {
		_ = raw.Close()
		release()
		if ctx.Err() == nil {
			t.stats.handshakeFailures.Add(1)
			if errors.Is(err, ErrAuth) {
				t.stats.authFailures.Add(1)
			}
		}
		return nil, fmt.Errorf("transport: handshake with peer %d at %s: %w", to, addr, err)
	}
	c.release, c.raw = release, raw
	return c, nil
}

func (t *TCP) handshakeOut(raw net.Conn, to uint64, addr string, deadline time.Time) (*conn, error) {
	if err := raw.SetDeadline(deadline); err != nil {
		return nil, err
	}
	nc := raw
	if t.cfg.TLS != nil {
		tc := tls.Client(raw, clientTLS(t.cfg.TLS, addr))
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		nc = tc
	}
	c := newConn(nc, smallBuffer, bigBuffer)
	key := t.cfg.ClusterKey
	var nd []byte
	if key != nil {
		nd = newNonce()
	}
	if err := c.sendHello(hello{From: t.cfg.ID, To: to, Nonce: nd}); err != nil {
		return nil, err
	}
	h, err := c.readHello(t.cfg.ID)
	if err != nil {
		return nil, err
	}
	if err := checkChallenge(key, h); err != nil {
		return nil, err
	}
	if key != nil {
		if err := checkProof(key, h.Proof, roleAccept, t.cfg.ID, h.From, nd, h.Nonce); err != nil {
			return nil, err
		}
	}
	if h.From != to {
		return nil, fmt.Errorf("%w: dialled %d, %d answered", ErrWrongPeer, to, h.From)
	}
	if err := t.verifyPeer(nc, to); err != nil {
		return nil, err
	}
	if key != nil {
		proof := keyProof(key, roleDial, t.cfg.ID, to, nd, h.Nonce)
		if err := c.sendHello(hello{From: t.cfg.ID, To: to, Proof: proof}); err != nil {
			return nil, err
		}
	}
	c.fr.max = t.cfg.MaxFrameSize
	return c, raw.SetDeadline(time.Time{})
}

// verifyPeer runs Config.VerifyPeer on a TLS connection's verified peer
// certificate for raft ID id.
func (t *TCP) verifyPeer(nc net.Conn, id uint64) error {
	tc, ok := nc.(*tls.Conn)
	if !ok || t.cfg.VerifyPeer == nil {
		return nil
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return fmt.Errorf("%w: peer %d presented no certificate", ErrAuth, id)
	}
	if err := t.cfg.VerifyPeer(id, certs[0]); err != nil {
		return fmt.Errorf("%w: peer %d's certificate: %w", ErrAuth, id, err)
	}
	return nil
}

// acceptLoop accepts peers until Close, backing off on accept errors.
func (t *TCP) acceptLoop() {
	b := backoff{min: t.cfg.BackoffMin, max: t.cfg.BackoffMax}
	for {
		raw, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				t.log.Error("transport: listener closed under the transport; no longer accepting peers", "err", err)
				return
			}
			t.log.Warn("transport: accept failed", "err", err)
			if !sleepCtx(t.ctx, b.next()) {
				return
			}
			continue
		}
		b.reset()
		if err := t.track(raw); err != nil {
			_ = raw.Close()
			if errors.Is(err, ErrClosed) {
				return
			}
			t.stats.connsRefused.Add(1)
			t.log.Warn("transport: refused an inbound connection", "remote", raw.RemoteAddr().String(), "err", err, "max", t.cfg.MaxInbound)
			continue
		}
		t.wg.Go(func() { t.serve(raw) })
	}
}

// serve runs one inbound connection: handshake, then frames until the
// connection ends or sends something invalid.
func (t *TCP) serve(raw net.Conn) {
	defer t.untrack(raw)
	h := t.handler()
	c, from, err := t.handshakeIn(raw)
	if err == nil {
		err = t.readLoop(h, c, from)
		if t.ctx.Err() == nil {
			t.probeDown(from) // did the peer's process go away?
		}
	}
	t.inboundDone(raw.RemoteAddr(), from, err)
}

// PeerDownReporter is an optional part of core.Handler: a transport tells
// it that a peer's process is gone for certain (its connection ended and
// its address refuses connections), faster than raft's election timeout
// would notice. It must not block.
type PeerDownReporter interface {
	ReportPeerDown(id uint64)
}

// probeTimeout bounds the dial that tells a dead peer from a live one.
const probeTimeout = 250 * time.Millisecond

// probeDown dials a peer whose connection just ended (with the configured
// Dialer, without TLS or hello): a refused connection, or one accepted and
// then reset, means nothing listens at its address any more (the process
// died or stopped), and the handler, if it cares, is told. A timeout or any
// other failure says nothing and is ignored.
func (t *TCP) probeDown(id uint64) {
	addr, ok := t.peerAddr(id)
	if _, isReporter := t.handler().(PeerDownReporter); !ok || !isReporter {
		t.log.Debug("transport: no probe of a peer whose connection ended", slog.Uint64("peer", id), "known", ok)
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, probeTimeout)
	defer cancel()
	c, err := t.cfg.Dialer(ctx, addr)
	if err == nil {
		// A process that is exiting may still have its listener open for a
		// moment: the kernel completes the dial, then resets it when the
		// listener goes. A live peer accepts and waits for our hello, so a
		// short read times out instead.
		_ = c.SetReadDeadline(time.Now().Add(probeTimeout))
		_, err = c.Read(make([]byte, 1))
		_ = c.Close()
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.log.Debug("transport: probe found the peer listening", slog.Uint64("peer", id), "addr", addr)
			return // alive (or it spoke: alive too)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			err = syscall.ECONNREFUSED // gone, as a refusal would say
		}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		t.log.Info("transport: peer refuses connections; reporting it down", slog.Uint64("peer", id), "addr", addr)
		t.reportDown(id)
		return
	}
	t.log.Debug("transport: probe inconclusive", slog.Uint64("peer", id), "addr", addr, "err", err)
}

// reportDown tells the handler, if it cares, that peer id refused a
// connection: nothing listens at its address.
func (t *TCP) reportDown(id uint64) {
	if h, ok := t.handler().(PeerDownReporter); ok && t.ctx.Err() == nil {
		h.ReportPeerDown(id)
	}
}

// handshakeIn runs the accepting side of the TLS handshake and the hello
// exchange (with the cluster key: both proofs) within HandshakeTimeout. It
// returns the raft ID the peer authenticated as.
func (t *TCP) handshakeIn(raw net.Conn) (*conn, uint64, error) {
	if err := raw.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout)); err != nil {
		return nil, 0, err
	}
	nc := raw
	if t.serverTLS != nil {
		tc := tls.Server(raw, t.serverTLS)
		if err := tc.Handshake(); err != nil {
			return nil, 0, fmt.Errorf("transport: TLS handshake: %w", err)
		}
		nc = tc
	}
	c := newConn(nc, bigBuffer, smallBuffer)
	key := t.cfg.ClusterKey
	h, err := c.readHello(t.cfg.ID)
	if err != nil && !errors.Is(err, ErrWrongPeer) {
		return nil, 0, err
	}
	if err := checkChallenge(key, h); err != nil {
		return nil, 0, err
	}
	if err == nil {
		if verr := t.verifyPeer(nc, h.From); verr != nil {
			return nil, 0, verr
		}
	}
	answer := hello{From: t.cfg.ID, To: h.From}
	if key != nil {
		answer.Nonce = newNonce()
		answer.Proof = keyProof(key, roleAccept, h.From, t.cfg.ID, h.Nonce, answer.Nonce)
	}
	// Answer even a hello addressed to another node, so the dialler
	// learns who lives at this address.
	if serr := c.sendHello(answer); err == nil {
		err = serr
	}
	if err != nil {
		return nil, 0, err
	}
	if key != nil {
		p, err := c.readHello(t.cfg.ID)
		if errors.Is(err, ErrUnexpectedFrame) {
			return nil, 0, fmt.Errorf("%w: peer %d sent no cluster-key proof (%v)", ErrAuth, h.From, err)
		}
		if err != nil {
			return nil, 0, err
		}
		if p.From != h.From {
			return nil, 0, fmt.Errorf("%w: proof from %d on the connection of %d", ErrAuth, p.From, h.From)
		}
		if err := checkProof(key, p.Proof, roleDial, h.From, t.cfg.ID, h.Nonce, answer.Nonce); err != nil {
			return nil, 0, err
		}
	}
	c.fr.max = t.cfg.MaxFrameSize
	return c, h.From, raw.SetDeadline(time.Time{})
}

// readLoop hands message frames to the handler until the connection ends,
// or turns the connection over to a snapshot transfer.
func (t *TCP) readLoop(h core.Handler, c *conn, from uint64) error {
	for {
		typ, n, err := c.fr.header()
		if err != nil {
			return err
		}
		switch typ {
		case FrameMessage:
			data := make([]byte, n)
			if err := readPayload(c.fr.r, data); err != nil {
				return err
			}
			t.stats.messagesReceived.Add(1)
			h.Receive(from, data)
		case FrameSnapshotBegin:
			return t.receiveSnapshot(h, c, from, n)
		default:
			return fmt.Errorf("%w: %v from peer %d", ErrUnexpectedFrame, typ, from)
		}
	}
}

// inboundDone logs and counts the end of an inbound connection; from is 0
// if the hello exchange did not complete.
func (t *TCP) inboundDone(remote net.Addr, from uint64, err error) {
	attrs := []any{"remote", remote.String(), slog.Uint64("peer", from), "err", err}
	switch {
	case err == nil || t.ctx.Err() != nil || errors.Is(err, io.EOF):
		t.log.Debug("transport: peer connection closed", attrs...)
	case isFrameError(err):
		t.stats.framesRejected.Add(1)
		t.log.Warn("transport: closed a peer connection that sent invalid frames", attrs...)
	case from == 0:
		t.stats.handshakeFailures.Add(1)
		if errors.Is(err, ErrAuth) {
			t.stats.authFailures.Add(1)
		}
		t.log.Warn("transport: peer handshake failed", attrs...)
	default:
		t.log.Info("transport: peer connection lost", attrs...)
	}
}

// isFrameError reports whether err is a violation of the frame protocol.
func isFrameError(err error) bool {
	for _, e := range []error{ErrFrameTooLarge, ErrBadVersion, ErrUnknownFrame, ErrTruncated, ErrUnexpectedFrame, ErrBadPayload} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// closeOnDone closes c when ctx ends. The returned release stops the watch,
// waiting for a close already under way, so no goroutine outlives it.
func closeOnDone(ctx context.Context, c io.Closer) (release func()) {
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.Close()
		close(closed)
	})
	return func() {
		if !stop() {
			<-closed
		}
	}
}

// linked returns a context that ends with ctx or on Close, and a release
// that cancels it and waits for the watch.
func (t *TCP) linked(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	release := closeOnDone(t.ctx, closerFunc(cancel))
	return ctx, func() {
		release()
		cancel()
	}
}

// closerFunc adapts a function to io.Closer.
type closerFunc func()

func (f closerFunc) Close() error {
	f()
	return nil
}

// backoff is an exponential delay with jitter: each next is between half
// and all of a bound that doubles from min up to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	b.cur = min(max(2*b.cur, b.min), b.max)
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleepCtx waits for d or until ctx ends; false if ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
