package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/grovekit/grove/core"
)

// TCP is a core.Transport over TCP, optionally secured by mutual TLS. Each
// peer has a bounded queue drained by one writer goroutine over one
// long-lived connection; each snapshot travels on a connection of its own.
// All methods are safe for concurrent use.
type TCP struct {
	cfg       Config
	log       *slog.Logger
	ln        net.Listener
	serverTLS *tls.Config
	ctx       context.Context // ends on Close; parent of every peer's context
	cancel    context.CancelFunc
	stats     counters
	wg        sync.WaitGroup

	// mu guards the fields below it.
	mu       sync.RWMutex
	h        core.Handler
	peers    map[uint64]*peer
	conns    map[net.Conn]struct{} // inbound connections, closed by Close
	started  bool
	closed   bool
	closeErr error
}

var _ core.Transport = (*TCP)(nil)

// New validates cfg and listens on cfg.ListenAddr (or takes cfg.Listener).
// Peers connecting before Start wait in the listen backlog. It returns an
// error for an invalid config or a failed listen.
func New(cfg Config) (*TCP, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			return nil, fmt.Errorf("transport: listen on %q: %w", cfg.ListenAddr, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &TCP{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "transport", slog.Uint64("node", cfg.ID)),
		ln:        ln,
		serverTLS: serverTLS(cfg.TLS),
		ctx:       ctx,
		cancel:    cancel,
		peers:     map[uint64]*peer{},
		conns:     map[net.Conn]struct{}{},
	}, nil
}

// Addr returns the address the transport listens on; with ListenAddr
// "host:0" it carries the port the system chose.
func (t *TCP) Addr() net.Addr { return t.ln.Addr() }

// Stats returns a snapshot of the transport's counters.
func (t *TCP) Stats() Stats { return t.stats.load() }

// Start records the handler and starts accepting peers. It returns
// ErrStarted on a second call and ErrClosed after Close.
func (t *TCP) Start(h core.Handler) error {
	if h == nil {
		return errors.New("transport: Start: nil handler")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return ErrClosed
	case t.started:
		return ErrStarted
	}
	t.h, t.started = h, true
	t.wg.Go(t.acceptLoop)
	return nil
}

// Send queues data for peer to and returns at once. When the peer is
// unknown, its queue is full or data does not fit in a frame, the message
// is dropped, counted, and the peer reported through
// Handler.ReportUnreachable (not after Close). The transport owns data
// after the call.
func (t *TCP) Send(to uint64, data []byte) {
	t.mu.RLock()
	p, closed := t.peers[to], t.closed
	t.mu.RUnlock()
	switch {
	case closed:
		t.stats.messagesDropped.Add(1)
		return
	case p == nil:
	case len(data)+frameOverhead > t.cfg.MaxFrameSize:
		t.log.Warn("transport: dropped a message larger than MaxFrameSize",
			slog.Uint64("peer", to), "size", len(data), "max", t.cfg.MaxFrameSize)
	default:
		select {
		case p.q <- data:
			return
		default:
		}
	}
	t.stats.messagesDropped.Add(1)
	t.reportUnreachable(to)
}

// AddPeer makes peer id reachable at addr (host:port), or moves it there:
// an open connection to the old address is closed and the queue kept. The
// connection is dialled on the first message. AddPeer after Close does
// nothing.
func (t *TCP) AddPeer(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if p := t.peers[id]; p != nil {
		p.setAddr(addr)
		return
	}
	p := newPeer(t, id, addr)
	t.peers[id] = p
	t.wg.Go(p.run)
}

// RemovePeer forgets peer id: its queued messages are dropped, its
// connection closed and its writer stopped. It does not wait for the
// writer; Close does.
func (t *TCP) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Close stops accepting, closes every connection, stops every writer and
// ends snapshot transfers in progress, then waits for all of the
// transport's goroutines. It is idempotent; every call returns the error of
// closing the listener, if any.
func (t *TCP) Close() error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		t.cancel()
		if err := t.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.closeErr = fmt.Errorf("transport: close listener: %w", err)
		}
		for c := range t.conns {
			_ = c.Close()
		}
		clear(t.peers)
	}
	err := t.closeErr
	t.mu.Unlock()
	t.wg.Wait()
	return err
}

// handler returns the handler given to Start, or nil before it.
func (t *TCP) handler() core.Handler {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.h
}

// reportUnreachable tells the handler, if started and not closed, that a
// peer could not be reached.
func (t *TCP) reportUnreachable(id uint64) {
	t.mu.RLock()
	h, closed := t.h, t.closed
	t.mu.RUnlock()
	if h != nil && !closed {
		h.ReportUnreachable(id)
	}
}

// peerAddr returns the address of a known peer.
func (t *TCP) peerAddr(id uint64) (string, bool) {
	t.mu.RLock()
	p := t.peers[id]
	t.mu.RUnlock()
	if p == nil {
		return "", false
	}
	return p.address(), true
}

// track registers an inbound connection for Close. It returns ErrClosed
// after Close, and errTooMany when MaxInbound connections are open.
func (t *TCP) track(c net.Conn) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return ErrClosed
	case len(t.conns) >= t.cfg.MaxInbound:
		return errTooMany
	}
	t.conns[c] = struct{}{}
	return nil
}

// errTooMany refuses an inbound connection beyond Config.MaxInbound.
var errTooMany = errors.New("transport: too many inbound connections")

// untrack forgets and closes an inbound connection.
func (t *TCP) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	_ = c.Close()
}

// Verify dials addr and runs the handshake with the node expected there,
// raft ID id, then closes the connection without sending anything. It
// returns nil once that node has proved itself the way every peer must
// (the cluster key, or a certificate TLS verifies; with neither configured
// it only checks the ID it claims), and otherwise the handshake's error
// (wrapping ErrAuth for a failed proof). A leader calls it before it lets a
// node that gossip announced into the raft configuration.
func (t *TCP) Verify(ctx context.Context, id uint64, addr string) error {
	ctx, release := t.linked(ctx)
	defer release()
	c, err := t.connect(ctx, id, addr)
	if err != nil {
		return err
	}
	c.close()
	return nil
}
