// Package front serves Grove's native client protocol (package client's
// Dial) on a node's client port.
//
// Each connection carries one session. A reader goroutine decodes requests
// and hands writes to the node at once (so they pipeline through raft in
// session order); a completer goroutine answers every request in the order
// it arrived, running reads only after the writes before them applied (so a
// session reads its own writes); a writer goroutine sends replies and watch
// events in one ordered stream. At most MaxInFlight requests of a
// connection are unanswered: beyond that the reader stops reading and TCP
// pushes back on the client. Malformed input closes the connection with an
// error message; other connections are unaffected.
package front

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/accept"
	"github.com/grovekit/grove/internal/audit"
	"github.com/grovekit/grove/internal/connpipe"
)

// Config configures a Server.
type Config struct {
	// Node is the node served. Required.
	Node *core.Node
	// TLS, if set, makes the port speak TLS.
	TLS *tls.Config
	// MaxFrame is the largest request frame read (default 8 MiB). A larger
	// one closes the connection with grove.ErrTooLarge; clients learn the
	// limit when they connect and refuse such requests themselves.
	MaxFrame int
	// MaxInFlight caps a connection's unanswered requests (default 512, at
	// most 1000: below the node's per-session result window of 1024, so
	// every request a client may resend is still answerable).
	MaxInFlight int
	// MaxQueued caps the replies and events waiting to be written to one
	// connection (default 65536). A client that does not read is
	// disconnected rather than buffered without bound; it reconnects and
	// gets the events it missed from its watches' re-registration.
	MaxQueued int
	// MaxConns caps the connections open at once (default 10,000;
	// negative: no cap). One more is closed as soon as it is accepted.
	MaxConns int
	// MaxConnsPerIP caps the connections open at once from one IP address,
	// as ZooKeeper's maxClientCnxns (default 60; negative: no cap).
	MaxConnsPerIP int
	// Audit, if set, gets a record of every write answered on this port.
	Audit *audit.Log
	// BehindWait is how long a connect from a client that has seen a newer
	// state than this node waits for the node to catch up before it is
	// refused with grove.ErrServerBehind (default 200ms).
	BehindWait time.Duration
	// AdminURL is the node's HTTP admin address, told to every client in
	// its Connected ("http://HOST:PORT" or https; empty: none). A host of
	// 0.0.0.0 or :: stands for the one the client dialed.
	AdminURL string
	// ObserveRequest, if set, is told each answered request's operation
	// and how long it took from arrival to answer (for metrics). It is
	// called from every connection's goroutines and must not block.
	ObserveRequest func(op string, d time.Duration)
	// Logger gets connection errors (default: discard).
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.Node == nil {
		return errors.New("front: Config.Node is required")
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = 8 << 20
	}
	l := c.limits()
	if err := l.Defaults("front"); err != nil {
		return err
	}
	c.MaxInFlight, c.MaxQueued, c.BehindWait, c.Logger = l.MaxInFlight, l.MaxQueued, l.BehindWait, l.Logger
	return nil
}

func (c *Config) limits() connpipe.Limits {
	return connpipe.Limits{MaxInFlight: c.MaxInFlight, MaxQueued: c.MaxQueued, BehindWait: c.BehindWait, Logger: c.Logger}
}

// Server serves the native protocol for one node.
type Server struct {
	cfg    Config
	limits connpipe.Limits
	n      *core.Node
	log    *slog.Logger

	port     *accept.Port[*conn]
	sessions connpipe.Sessions[*conn] // the connection each session is attached to
}

// New returns a Server for cfg.Node; call Serve to accept connections.
func New(cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, limits: cfg.limits(), n: cfg.Node, log: cfg.Logger, port: accept.New[*conn](cfg.Node.Done())}
	s.port.Limits, s.port.Logger = accept.LimitsOf(cfg.MaxConns, cfg.MaxConnsPerIP), cfg.Logger
	return s, nil
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = accept.ErrClosed

// Serve accepts connections on ln until Close (then it returns ErrClosed)
// or ln fails. The server closes by itself when its node stops: a client
// attached to a stopped node must move to a live one, even if it is only
// waiting for a watch.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	return s.port.Serve(ln, func(nc net.Conn) *conn { return newConn(s, nc) })
}

// Close stops accepting, closes every connection and waits for their
// goroutines. Sessions live on: their clients reconnect elsewhere.
func (s *Server) Close() error {
	s.port.Close()
	return nil
}

// ConnCount returns the number of open client connections.
func (s *Server) ConnCount() int { return s.port.Count() }

// Accepting reports whether the port takes connections: false while
// accept fails (out of file descriptors, say) and after Close.
func (s *Server) Accepting() bool { return s.port.Accepting() }

// ConnsRefused counts connections closed at once for exceeding MaxConns
// or MaxConnsPerIP.
func (s *Server) ConnsRefused() uint64 { return s.port.Refused() }

// SessionCount returns the number of sessions attached to a connection
// here (connections still in their handshake are not counted).
func (s *Server) SessionCount() int { return s.sessions.Len() }

// attach makes c the connection of its session. A connection the session
// had here before is closed first and its watches dropped, so the new one
// starts from the watches its client re-registers.
func (s *Server) attach(ctx context.Context, c *conn) error {
	return s.sessions.Attach(ctx, s.n, c.session, c, func(old *conn) <-chan struct{} {
		old.close(errReplaced)
		return old.Done
	})
}

// detach forgets c as its session's connection, dropping the session's
// watches here unless another connection took it over.
func (s *Server) detach(c *conn) { s.sessions.Detach(s.n, c.session, c) }

var errReplaced = errors.New("front: the session reconnected on another connection")
