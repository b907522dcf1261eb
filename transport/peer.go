package transport

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// maxBatch bounds the messages written between two flushes, so Stats stay
// fresh under a steady stream.
const maxBatch = 1024

// errAddrChanged ends a connection whose peer moved to another address.
var errAddrChanged = errors.New("transport: peer address changed")

// peer is the outbound side of one remote node: a bounded queue and the
// writer goroutine (run) that owns its connection.
type peer struct {
	t      *TCP
	id     uint64
	q      chan []byte
	ctx    context.Context // ends on RemovePeer or Close
	cancel context.CancelFunc

	// Touched by the writer goroutine only.
	everConnected bool
	failing       bool // the last connection attempt failed

	// mu guards the fields below it.
	mu       sync.Mutex
	addr     string
	dropConn context.CancelFunc // ends the current connection; nil if none
}

func newPeer(t *TCP, id uint64, addr string) *peer {
	ctx, cancel := context.WithCancel(t.ctx)
	return &peer{t: t, id: id, q: make(chan []byte, t.cfg.QueueSize), ctx: ctx, cancel: cancel, addr: addr}
}

func (p *peer) address() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// setAddr moves the peer; an open connection to the old address is closed
// and the next message dials the new one.
func (p *peer) setAddr(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if addr == p.addr {
		return
	}
	p.addr = addr
	if p.dropConn != nil {
		p.dropConn()
	}
}

// stop ends the writer and closes its connection; queued messages are
// dropped with the queue.
func (p *peer) stop() { p.cancel() }

// run is the writer goroutine: it dials lazily on the first queued
// message, writes until the connection fails, and redials with backoff.
func (p *peer) run() {
	b := backoff{min: p.t.cfg.BackoffMin, max: p.t.cfg.BackoffMax}
	for {
		var msg []byte
		select {
		case msg = <-p.q:
		case <-p.ctx.Done():
			return
		}
		connected, err := p.session(msg)
		switch {
		case p.ctx.Err() != nil:
			return
		case errors.Is(err, errAddrChanged):
			b.reset()
			continue
		case connected:
			b.reset()
		default:
			p.t.stats.dialFailures.Add(1)
			p.t.stats.messagesDropped.Add(p.drain())
		}
		p.logFailure(connected, err)
		p.t.reportUnreachable(p.id)
		switch {
		case !connected && errors.Is(err, syscall.ECONNREFUSED):
			p.t.reportDown(p.id)
		case connected:
			// A connection that was up just broke: find out whether the
			// peer's process went away, without holding up the redial.
			p.t.wg.Go(func() { p.t.probeDown(p.id) })
		}
		if !sleepCtx(p.ctx, b.next()) {
			return
		}
	}
}

// session connects and writes first and every message queued after it,
// until the connection fails or the peer stops. connected reports whether
// the handshake succeeded.
func (p *peer) session(first []byte) (connected bool, err error) {
	p.mu.Lock()
	addr := p.addr
	ctx, cancel := context.WithCancel(p.ctx)
	p.dropConn = cancel
	p.mu.Unlock()
	defer cancel()

	c, err := p.t.connect(ctx, p.id, addr)
	if err == nil {
		// Message connections only: a snapshot stream may legitimately
		// wait on a slow receiver.
		setUserTimeout(c.raw, messageUserTimeout)
	}
	if err != nil {
		p.t.stats.messagesDropped.Add(1) // first
		return false, p.cause(ctx, err)
	}
	defer c.close()
	p.t.stats.connects.Add(1)
	if p.everConnected {
		p.t.stats.reconnects.Add(1)
	}
	if p.failing {
		p.t.log.Info("transport: peer reachable again", slog.Uint64("peer", p.id), "addr", addr)
	}
	p.everConnected, p.failing = true, false
	return true, p.cause(ctx, p.pump(ctx, c, first))
}

// cause names why a connection ended: errAddrChanged if its context was
// cancelled while the peer lives on, else err.
func (p *peer) cause(ctx context.Context, err error) error {
	if ctx.Err() != nil && p.ctx.Err() == nil {
		return errAddrChanged
	}
	return err
}

// pump writes msg and then every queued message, flushing whenever the
// queue is momentarily empty (or after maxBatch messages), and waits for
// more. It returns on a write error or when ctx ends.
func (p *peer) pump(ctx context.Context, c *conn, msg []byte) error {
	wt := p.t.cfg.WriteTimeout
	var deadlineSet time.Time
	pending := uint64(0)
	for {
		// Keep a blocked write bounded by WriteTimeout without touching the
		// deadline on every message.
		if now := time.Now(); now.Sub(deadlineSet) > wt/4 {
			if err := c.SetWriteDeadline(now.Add(wt)); err != nil {
				p.t.stats.messagesDropped.Add(pending + 1)
				return err
			}
			deadlineSet = now
		}
		if err := c.fw.write(FrameMessage, msg); err != nil {
			p.t.stats.messagesDropped.Add(pending + 1)
			return err
		}
		pending++
		if pending < maxBatch {
			select {
			case msg = <-p.q:
				continue
			default:
			}
		}
		if err := c.fw.w.Flush(); err != nil {
			p.t.stats.messagesDropped.Add(pending)
			return err
		}
		p.t.stats.messagesSent.Add(pending)
		pending = 0
		select {
		case msg = <-p.q:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// drain drops every queued message and returns how many there were.
func (p *peer) drain() uint64 {
	var n uint64
	for {
		select {
		case <-p.q:
			n++
		default:
			return n
		}
	}
}

// logFailure logs the first failure of a streak as a warning and the rest
// at debug level, so a dead peer does not flood the log.
func (p *peer) logFailure(connected bool, err error) {
	attrs := []any{slog.Uint64("peer", p.id), "addr", p.address(), "err", err}
	switch {
	case connected:
		p.t.log.Info("transport: connection to peer lost", attrs...)
	case !p.failing:
		p.failing = true
		p.t.log.Warn("transport: peer unreachable", attrs...)
	default:
		p.t.log.Debug("transport: peer still unreachable", attrs...)
	}
}
