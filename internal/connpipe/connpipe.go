// Package connpipe is the connection pipeline both client ports share
// (front, the native protocol, and zkwire, ZooKeeper's): each protocol
// supplies only its codec — a handshake, a reader that decodes requests,
// and an answer for each — and connpipe runs the rest.
//
// A connection has three goroutines. The protocol's reader decodes
// requests in arrival order; it hands writes to the node at once (so they
// pipeline through raft in session order) and queues every request to the
// completer (Admit, then Queue). The completer answers requests in that
// order, so a read runs only after the writes before it applied and a
// session reads its own writes; while a read that may set a watch runs,
// events are held back so none overtakes the reply. The writer sends
// replies and watch events in one ordered stream, flushing when the queue
// runs dry. At most Limits.MaxInFlight requests are unanswered: beyond
// that the reader stops reading and TCP pushes back on the client; a
// client that does not read what it is sent is disconnected once
// Limits.MaxQueued messages wait for it.
package connpipe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/fsm"
	"github.com/grovekit/grove/internal/outq"
)

// MaxInFlightLimit is the largest Limits.MaxInFlight allowed: below the
// node's per-session result window (fsm.ResultWindow), so a request a
// client resends after a reconnect is still answerable from it, with room
// for the session's requests that do not pass the port (keep-alives, a
// close).
const MaxInFlightLimit = fsm.ResultWindow - 24

// Limits bound one connection. The zero value takes the defaults.
type Limits struct {
	// MaxInFlight caps a connection's unanswered requests (default 512, at
	// most MaxInFlightLimit).
	MaxInFlight int
	// MaxQueued caps the replies and events waiting to be written to one
	// connection (default 65536).
	MaxQueued int
	// BehindWait is how long a connect from a client that has seen a newer
	// state than this node waits for the node to catch up (default 200ms).
	BehindWait time.Duration
	// Logger gets connection errors (default: discard).
	Logger *slog.Logger
}

// Defaults fills in the defaults and checks the limits; pkg names the
// caller in the error ("front: MaxInFlight ...").
func (l *Limits) Defaults(pkg string) error {
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = 512
	}
	if l.MaxInFlight > MaxInFlightLimit {
		return fmt.Errorf("%s: MaxInFlight %d exceeds %d, the node's result window (%d) less a margin", pkg, l.MaxInFlight, MaxInFlightLimit, fsm.ResultWindow)
	}
	if l.MaxQueued <= 0 {
		l.MaxQueued = 1 << 16
	}
	if l.BehindWait <= 0 {
		l.BehindWait = 200 * time.Millisecond
	}
	if l.Logger == nil {
		l.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Request is what the pipeline needs of a request: embed it in the
// protocol's request type.
type Request struct {
	// Pending is the write the reader began, if the request is one.
	Pending *core.Pending
	// Reply is an answer the reader already made (auth, a refusal).
	Reply []byte
	// Last ends the connection after this request's answer.
	Last bool
	// Start is when the request arrived.
	Start time.Time
}

// Base returns r; it lets the pipeline reach the Request embedded in a
// protocol's request type.
func (r *Request) Base() *Request { return r }

// Req is a protocol's request type: a pointer to a struct that embeds
// Request.
type Req interface{ Base() *Request }

// ErrQueueFull ends a connection whose client does not read its messages;
// it reconnects and gets what its watches missed from their
// re-registration.
var ErrQueueFull = errors.New("too many replies and events unread")

// Pipe is the pipeline of one connection. Embed it in the protocol's
// connection type and call Init before anything else.
type Pipe[R Req] struct {
	Conn net.Conn
	// Out is the ordered stream of messages to the client.
	Out outq.Queue
	// Ctx ends when the connection closes.
	Ctx context.Context
	// Done is closed when Run has returned.
	Done chan struct{}
	// Pings answers keep-alives concurrently; Run waits for them.
	Pings sync.WaitGroup

	inflight chan struct{} // a token per unanswered request
	work     chan R        // reader → completer, in request order
	cancel   context.CancelFunc
	once     sync.Once
	final    atomic.Bool // Close queued a last message and bounded its write
	onFull   func()      // how a full queue ends the connection
}

// Init readies the pipe for nc. onFull ends the connection when the client
// does not read (nil: close at once).
func (p *Pipe[R]) Init(nc net.Conn, l Limits, onFull func()) {
	lf := newLife()
	*p = Pipe[R]{
		Conn: nc, Ctx: lf.ctx, cancel: lf.cancel, Done: make(chan struct{}),
		inflight: make(chan struct{}, l.MaxInFlight),
		work:     make(chan R, l.MaxInFlight),
		onFull:   onFull,
	}
	p.Out.Init(l.MaxQueued)
	if p.onFull == nil {
		p.onFull = func() { p.Close(nil) }
	}
}

// life is a connection's context and the function that ends it.
type life struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newLife() life {
	ctx, cancel := context.WithCancel(context.Background())
	return life{ctx: ctx, cancel: cancel}
}

// Close ends the connection once. With a final message, that message is
// sent last (best effort) and the connection then closed by the writer; a
// peer that does not read gets 2 s for it, so it cannot hold the
// connection (and its session's takeover) open. Without one the
// connection closes at once.
func (p *Pipe[R]) Close(final []byte) {
	p.once.Do(func() {
		if final != nil {
			p.final.Store(true)
			p.Out.PushFinal(final)
		}
		p.Out.Close()
		p.cancel()
		if final == nil {
			_ = p.Conn.Close()
		} else {
			_ = p.Conn.SetDeadline(time.Now().Add(2 * time.Second))
		}
	})
}

// InFlight returns the number of unanswered requests.
func (p *Pipe[R]) InFlight() int { return len(p.inflight) }

// Admit takes an in-flight slot for the next request, waiting while
// MaxInFlight are unanswered. Every admitted request is either queued to
// the completer (which frees its slot) or freed with Release.
func (p *Pipe[R]) Admit() error {
	if err := p.Ctx.Err(); err != nil {
		return err // select picks at random when both are ready
	}
	select {
	case p.inflight <- struct{}{}:
		return nil
	case <-p.Ctx.Done():
		return p.Ctx.Err()
	}
}

// Release frees a slot taken by Admit for a request answered outside the
// completer (a keep-alive).
func (p *Pipe[R]) Release() { <-p.inflight }

// Queue hands an admitted request to the completer.
func (p *Pipe[R]) Queue(r R) error {
	if err := p.Ctx.Err(); err != nil {
		return err
	}
	select {
	case p.work <- r:
		return nil
	case <-p.Ctx.Done():
		return p.Ctx.Err()
	}
}

// Push queues a message, ending the connection of a client too slow to
// take its messages.
func (p *Pipe[R]) Push(msg []byte) {
	if !p.Out.Push(msg) {
		p.onFull()
	}
}

// PushEvent queues a watch event of the change at zxid (held back while a
// read runs), ending the connection of a client too slow to take it.
func (p *Pipe[R]) PushEvent(msg []byte, zxid uint64) {
	if !p.Out.PushEvent(msg, zxid) {
		p.onFull()
	}
}

// Codec is a protocol's part of a connection.
type Codec[R Req] interface {
	// Handshake reads the client's connect and answers it.
	Handshake() error
	// Reader decodes requests until the connection ends (Admit, Queue).
	Reader() error
	// Answer runs one request and returns its reply and, for a read, the
	// zxid of the state it reflects (events of changes up to it go before
	// the reply). An error ends the connection without an answer.
	Answer(r R) (msg []byte, zxid uint64, err error)
	// Answered is told of each request answered (for statistics).
	Answered(r R)
	// WriteMsg writes msg as it goes on the wire to w, a buffer the
	// writer flushes when the queue runs dry.
	WriteMsg(w io.Writer, msg []byte) error
	// End is told why the connection ended (nil: closed locally) and
	// closes it, with a final message or without.
	End(err error)
}

// Run runs the connection: the writer, then the handshake, then the
// reader and the completer until any of them fails. When all three have
// returned it calls detach (the session's registry) and closes Done.
func (p *Pipe[R]) Run(c Codec[R], detach func()) {
	defer close(p.Done)
	defer detach()
	var wg sync.WaitGroup
	wg.Go(func() { p.writer(c) })
	err := c.Handshake()
	if err == nil {
		wg.Go(func() { p.completer(c) })
		err = c.Reader()
	}
	c.End(err)
	p.Pings.Wait()
	wg.Wait()
	p.drain() // what the reader queued as the completer was leaving
	_ = p.Conn.Close()
}

// completer answers requests in order.
func (p *Pipe[R]) completer(c Codec[R]) {
	for {
		var r R
		select {
		case r = <-p.work:
		case <-p.Ctx.Done():
			p.drain()
			return
		}
		b := r.Base()
		// A read may set a watch: hold events back until its reply is
		// queued, so no event the watch fires overtakes the reply.
		read := b.Pending == nil && b.Reply == nil
		if read {
			p.Out.Hold()
		}
		msg, zxid, err := c.Answer(r)
		if err != nil {
			p.Close(nil)
			p.drain()
			return
		}
		c.Answered(r)
		switch {
		case b.Last:
			p.Close(msg)
			p.drain()
			return
		case read:
			if !p.Out.Release(msg, zxid) {
				p.onFull()
			}
		default:
			p.Push(msg)
		}
		<-p.inflight
	}
}

// drain cancels the writes still queued when the connection ends.
func (p *Pipe[R]) drain() {
	for {
		select {
		case r := <-p.work:
			if pd := r.Base().Pending; pd != nil {
				pd.Cancel()
			}
		default:
			return
		}
	}
}

// writer sends queued messages, flushing when the queue runs dry.
func (p *Pipe[R]) writer(c Codec[R]) {
	bw := bufio.NewWriterSize(p.Conn, 64<<10)
	for {
		batch, final := p.Out.Take()
		for _, msg := range batch {
			if !p.final.Load() { // Close bounded the last message's write itself
				_ = p.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			}
			if err := c.WriteMsg(bw, msg); err != nil {
				p.Close(nil)
				return
			}
		}
		if err := bw.Flush(); err != nil {
			p.Close(nil)
			return
		}
		if final {
			_ = p.Conn.Close()
			return
		}
	}
}

// Sessions is the registry of the connection each session is attached to
// on one port. The zero value is ready to use.
type Sessions[C comparable] struct {
	mu    sync.Mutex
	conns map[uint64]C
}

// Attach makes c the connection of session id. An earlier connection of
// the session here is closed (stop closes it and returns a channel closed
// once it is gone) and waited for, within ctx; then the session's watches
// on n are dropped, so c starts from the watches its client re-registers.
func (s *Sessions[C]) Attach(ctx context.Context, n *core.Node, id uint64, c C, stop func(C) <-chan struct{}) error {
	return s.attach(ctx, id, c, stop, func() { n.DropWatches(id) })
}

func (s *Sessions[C]) attach(ctx context.Context, id uint64, c C, stop func(C) <-chan struct{}, dropWatches func()) error {
	var zero C
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[uint64]C{}
	}
	old := s.conns[id]
	s.conns[id] = c
	s.mu.Unlock()
	if old != zero && old != c {
		select {
		case <-stop(old):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	dropWatches()
	return nil
}

// Detach forgets c as session id's connection and drops the session's
// watches on n, unless another connection took the session over.
func (s *Sessions[C]) Detach(n *core.Node, id uint64, c C) {
	if s.detach(id, c) {
		n.DropWatches(id)
	}
}

func (s *Sessions[C]) detach(id uint64, c C) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.conns[id]; ok && id != 0 && cur == c {
		delete(s.conns, id)
		return true
	}
	return false
}

// Len returns the number of attached sessions.
func (s *Sessions[C]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
