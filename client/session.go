package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// State is a session state change reported by Events.
type State int

// Session states.
const (
	StateConnected State = iota + 1
	StateDisconnected
	StateReconnected
	StateExpired
	StateClosed
)

// String returns the name of the State.
func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateReconnected:
		return "reconnected"
	case StateExpired:
		return "expired"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Session is one session against a Grove cluster. All methods are safe for
// concurrent use. Every blocking call takes a ctx.
type Session struct {
	b        Backend
	opts     options
	log      *slog.Logger
	id       uint64
	password []byte
	timeout  time.Duration

	// wmu orders writes: a sequence number and its Begin happen under it.
	wmu sync.Mutex
	seq uint64

	// mu guards the fields below it.
	mu       sync.Mutex
	ids      []grove.Identity
	oneShot  map[watchKey][]*oneShot
	watches  map[*Watch]struct{}
	err      error // why the session ended
	lastZxid uint64

	emitMu sync.Mutex // serializes emit; final: the last state was emitted
	final  bool

	deadline atomic.Int64 // unix nanos until which the session surely lives
	events   chan State
	life     context.Context
	cancel   context.CancelFunc
	donec    chan struct{}
	endOnce  sync.Once
	wg       sync.WaitGroup
}

type watchKey struct {
	path string
	kind grove.WatchKind // WatchData or WatchChildren
}

// New opens a session on b. Users get sessions from Dial or
// core.Node.Session; New is for Backend implementations.
func New(ctx context.Context, b Backend, opts ...Option) (*Session, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.chroot != "" {
		if err := grove.ValidatePath(o.chroot); err != nil || o.chroot == "/" {
			return nil, fmt.Errorf("client: chroot %q: %w", o.chroot, grove.ErrBadArguments)
		}
	}
	s := &Session{
		b: b, opts: o, log: o.logger,
		oneShot: map[watchKey][]*oneShot{},
		watches: map[*Watch]struct{}{},
		events:  make(chan State, max(o.eventBuffer, 1)),
		donec:   make(chan struct{}),
	}
	start := time.Now()
	id, pw, negotiated, err := b.OpenSession(ctx, o.timeout, s.onEvent)
	if err != nil {
		return nil, err
	}
	s.id, s.password, s.timeout = id, pw, negotiated
	s.deadline.Store(start.Add(negotiated).UnixNano())
	s.log = o.logger.With("session", fmt.Sprintf("%x", id))
	s.life, s.cancel = context.WithCancel(context.Background())
	for _, a := range o.auth {
		if err := s.AddAuth(ctx, a.scheme, a.cred); err != nil {
			_ = s.Close(ctx)
			return nil, err
		}
	}
	s.emit(StateConnected)
	s.wg.Go(s.keepAlive)
	return s, nil
}

// ID returns the session id (the zxid of its creation).
func (s *Session) ID() uint64 { return s.id }

// Password returns the session password, which re-attaches the session.
func (s *Session) Password() []byte { return append([]byte(nil), s.password...) }

// Timeout returns the negotiated session timeout.
func (s *Session) Timeout() time.Duration { return s.timeout }

// Deadline returns the time until which the cluster keeps the session even
// if no further keep-alive gets through: the last keep-alive's send time
// plus the time left the leader reported. What the session holds (its
// ephemeral nodes, a lock) is certain only until then.
func (s *Session) Deadline() time.Time { return time.Unix(0, s.deadline.Load()) }

// Events returns the channel of session state changes. It is closed after
// the final StateExpired or StateClosed.
func (s *Session) Events() <-chan State { return s.events }

// Done returns a channel closed when the session is gone for good.
func (s *Session) Done() <-chan struct{} { return s.donec }

// Context returns a context that ends when the session does. Bind work to
// the session's life with it: context.AfterFunc(s.Context(), cancel) ends
// a call of yours when the session goes, with no goroutine waiting.
func (s *Session) Context() context.Context { return s.life }

// Go runs f in a goroutine the session owns, for work that belongs to the
// session's life: a recipe's watcher, or the clean-up of a call its caller
// stopped waiting for. f's ctx ends when the session ends, and Close
// returns only after f has, so f must not call Close itself. If the
// session has already ended, Go does not run f and reports false.
func (s *Session) Go(f func(ctx context.Context)) bool {
	return s.spawn(func() { f(s.life) })
}

// Err returns why the session ended (grove.ErrSessionExpired,
// grove.ErrSessionClosed, grove.ErrStopped), or nil while it lives.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// emit reports a state change without blocking: when the buffer is full the
// oldest undelivered change is dropped. After the final state (expired or
// closed) nothing more is emitted, so the final one always arrives.
func (s *Session) emit(st State) {
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	if s.final {
		return
	}
	s.final = st == StateExpired || st == StateClosed
	for {
		select {
		case s.events <- st:
			return
		default:
		}
		select {
		case <-s.events:
		default:
		}
	}
}

// linked is a Backend whose link to the cluster can break and heal (the
// network backend): it reports StateDisconnected and StateReconnected, and
// closes gone when the cluster says the session expired.
type linked interface {
	links() <-chan State
	gone() <-chan struct{}
}

// keepAlive refreshes the session every third of its timeout (and at once
// after a reconnect), and passes link state changes on to Events.
func (s *Session) keepAlive() {
	interval := max(s.timeout/3, 10*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	var links <-chan State
	var gone <-chan struct{}
	if l, ok := s.b.(linked); ok {
		links, gone = l.links(), l.gone()
	}
	for {
		select {
		case <-s.life.Done():
			return
		case <-gone:
			s.end(grove.ErrSessionExpired)
			return
		case st := <-links:
			s.emit(st)
			if st != StateReconnected {
				continue
			}
		case <-t.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(s.life, s.timeout)
		left, err := s.b.KeepAlive(ctx, s.id)
		cancel()
		switch {
		case err == nil:
			s.deadline.Store(sent.Add(left).UnixNano())
		case errors.Is(err, grove.ErrSessionExpired):
			s.end(grove.ErrSessionExpired)
			return
		case errors.Is(err, grove.ErrStopped):
			s.end(grove.ErrStopped)
			return
		case s.life.Err() != nil:
			return
		default:
			s.log.Warn("keep-alive failed", "err", err)
		}
	}
}

// end finishes the session once: why becomes Err, watches are closed,
// Done closes and Events gets its final state.
func (s *Session) end(why error) {
	s.endOnce.Do(func() {
		s.mu.Lock()
		s.err = why
		shots, watches := s.oneShot, s.watches
		s.oneShot, s.watches = map[watchKey][]*oneShot{}, map[*Watch]struct{}{}
		s.mu.Unlock()
		s.cancel()
		s.b.Release(s.id)
		for _, list := range shots {
			for _, w := range list {
				close(w.ch)
			}
		}
		for w := range watches {
			w.stop()
		}
		close(s.donec)
		if errors.Is(why, grove.ErrSessionExpired) {
			s.emit(StateExpired)
		} else {
			s.emit(StateClosed)
		}
		go func() { // the owner of Events: close it after the final state
			s.wg.Wait()
			close(s.events)
		}()
	})
}

// spawn starts fn as a goroutine of the session unless the session has
// ended: end closes Events once every such goroutine returned, so none may
// start after it.
func (s *Session) spawn(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.wg.Go(fn)
	return true
}

// alive returns the session's end error, if it ended.
func (s *Session) alive() error {
	select {
	case <-s.donec:
		return s.Err()
	default:
		return nil
	}
}

// Close closes the session: its ephemeral nodes are deleted at once and its
// watches end. Closing a closed session is a no-op. If no server answers
// within the session timeout (none reachable), Close gives up and returns
// nil: the cluster expires the session, and its ephemerals, on its own.
func (s *Session) Close(ctx context.Context) error {
	if err := s.alive(); err != nil {
		s.wg.Wait() // what the session ran (Go) may still be unwinding
		return nil
	}
	// A session no server hears from expires within its timeout anyway:
	// waiting longer for the close to be answered gains nothing.
	wctx, cancel := context.WithTimeout(ctx, s.timeout)
	_, err := s.write(wctx, &command.Request{Op: command.OpCloseSession})
	cancel()
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		err = nil // unanswered within the timeout: gone by expiry
	}
	s.end(grove.ErrSessionClosed)
	s.wg.Wait()
	if err != nil && !errors.Is(err, grove.ErrSessionExpired) && !errors.Is(err, grove.ErrSessionClosed) {
		return err
	}
	return nil
}

// write sends one write in session order and returns its result; a result
// with an error code is returned as that error.
func (s *Session) write(ctx context.Context, req *command.Request) (*command.Result, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	req.Identities = s.ids
	s.mu.Unlock()
	s.wmu.Lock()
	s.seq++
	req.Session, req.Seq = s.id, s.seq
	p, err := s.b.Begin(ctx, req)
	if err != nil {
		s.seq-- // never proposed: the number is free again
		s.wmu.Unlock()
		return nil, err
	}
	s.wmu.Unlock()
	res, err := p.Wait(ctx)
	if err != nil {
		if ctx.Err() != nil && s.life.Err() == nil {
			// Unknown outcome: keep resolving it so later writes of the
			// session are not held behind a gap in the sequence.
			if !s.spawn(func() { _, _ = p.Wait(s.life) }) {
				p.Cancel()
			}
		}
		if errors.Is(err, grove.ErrStopped) {
			s.end(grove.ErrStopped)
		}
		return nil, err
	}
	s.mu.Lock()
	s.lastZxid = max(s.lastZxid, res.Zxid)
	s.mu.Unlock()
	if res.Code == grove.CodeSessionExpired {
		s.end(grove.ErrSessionExpired)
	}
	return res, grove.CodeError(res.Code)
}

// abs turns a session path into a cluster path (chroot).
func (s *Session) abs(path string) string {
	if s.opts.chroot == "" {
		return path
	}
	if path == "/" {
		return s.opts.chroot
	}
	return s.opts.chroot + path
}

// rel turns a cluster path into a session path.
func (s *Session) rel(path string) string {
	if s.opts.chroot == "" {
		return path
	}
	p := strings.TrimPrefix(path, s.opts.chroot)
	if p == "" {
		return "/"
	}
	return p
}

// AdminURL returns the HTTP admin address ("http://HOST:PORT" or https)
// of the server a remote session is connected to, as the server announced
// it (a host it listens on as 0.0.0.0 or :: replaced by the one the client
// dialed), or "" for an embedded session or a server that announces none.
// Tools use it to reach /status, /members or /v1/backup through the
// cluster's client ports alone.
func (s *Session) AdminURL() string {
	if r, ok := s.b.(*remote); ok {
		return r.adminURLOf()
	}
	return ""
}
