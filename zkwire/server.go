// Package zkwire serves ZooKeeper's client protocol (jute records in 4-byte
// length-prefixed frames) on top of a Grove node, so kazoo, Curator,
// zkCli, go-zookeeper and other ZooKeeper clients work unchanged. Sessions,
// watches, ACLs and ordering are the node's own: a ZooKeeper client and a
// native Grove client see the same znodes, sessions and events.
//
// The connection pipeline is the native front's (package front): a reader
// hands writes to the node at once, a completer answers in request order
// (reads after the writes before them applied), a writer sends replies and
// watch notifications as one ordered stream. ZooKeeper clients do not
// number their writes, so the server numbers them per session; a client
// that re-attaches (to this or another server) first fences the session
// (core.Node.Fence), so nothing its earlier connection left in flight can
// apply after the re-attach — ZooKeeper's "session moved" guarantee.
//
// Every four-letter word of ZooKeeper 3.8 (ruok, srvr, stat, envi, conf,
// cons, crst, srst, mntr, wchs, wchc, wchp, isro, dump, dirs, gtmk, stmk,
// hash) is answered on the same port.
package zkwire

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/accept"
	"github.com/grovekit/grove/internal/audit"
	"github.com/grovekit/grove/internal/connpipe"
)

// Version is the ZooKeeper version Grove reports (four-letter words):
// clients such as kazoo read it to pick features.
const Version = "3.9.3-grove-" + grove.Version

// Config configures a Server.
type Config struct {
	// Node is the node served. Required.
	Node *core.Node
	// MaxBuffer is ZooKeeper's jute.maxbuffer: the largest request frame
	// (default 1 MiB). A larger one closes the connection, as ZooKeeper
	// does.
	MaxBuffer int
	// MaxInFlight caps a connection's unanswered requests (default 512, at
	// most 1000: below the node's per-session result window).
	MaxInFlight int
	// MaxQueued caps the replies and notifications queued for one
	// connection (default 65536); a client that does not read is
	// disconnected.
	MaxQueued int
	// MaxConns caps the connections open at once (default 10,000;
	// negative: no cap). One more is closed as soon as it is accepted.
	MaxConns int
	// MaxConnsPerIP caps the connections open at once from one IP address,
	// as ZooKeeper's maxClientCnxns (default 60; negative: no cap).
	MaxConnsPerIP int
	// Audit, if set, gets a record of every write answered on this port.
	Audit *audit.Log
	// BehindWait is how long a client that has seen a newer zxid than this
	// node waits for it before the connection is closed, as ZooKeeper does
	// (default 200ms).
	BehindWait time.Duration
	// Conf lists extra key=value lines for the conf four-letter word
	// (client port, data dir, ...).
	Conf map[string]string
	// ObserveRequest, if set, is told each answered request's operation
	// and how long it took from arrival to answer (for metrics). It is
	// called from every connection's goroutines and must not block.
	ObserveRequest func(op string, d time.Duration)
	// Logger gets connection errors (default: discard).
	Logger *slog.Logger
}

// Server serves ZooKeeper clients for one node.
type Server struct {
	cfg   Config
	n     *core.Node
	log   *slog.Logger
	start time.Time

	received, sent atomic.Int64
	lat            latency      // request latency figures (srvr, stat, mntr)
	traceMask      atomic.Int64 // gtmk, stmk

	limits   connpipe.Limits
	port     *accept.Port[*conn]
	sessions connpipe.Sessions[*conn] // the connection each session is attached to
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = accept.ErrClosed

// New returns a Server; call Serve to accept connections.
func New(cfg Config) (*Server, error) {
	if cfg.Node == nil {
		return nil, errors.New("zkwire: Config.Node is required")
	}
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = 1 << 20
	}
	l := connpipe.Limits{MaxInFlight: cfg.MaxInFlight, MaxQueued: cfg.MaxQueued, BehindWait: cfg.BehindWait, Logger: cfg.Logger}
	if err := l.Defaults("zkwire"); err != nil {
		return nil, err
	}
	cfg.MaxInFlight, cfg.MaxQueued, cfg.BehindWait, cfg.Logger = l.MaxInFlight, l.MaxQueued, l.BehindWait, l.Logger
	s := &Server{cfg: cfg, limits: l, n: cfg.Node, log: cfg.Logger, start: time.Now(),
		port: accept.New[*conn](cfg.Node.Done())}
	s.port.Limits, s.port.Logger = accept.LimitsOf(cfg.MaxConns, cfg.MaxConnsPerIP), cfg.Logger
	s.traceMask.Store(defaultTraceMask)
	s.lat.reset()
	return s, nil
}

// Serve accepts connections on ln until Close (then it returns ErrClosed)
// or ln fails. The server closes by itself when its node stops, so its
// clients move to live servers.
func (s *Server) Serve(ln net.Listener) error {
	return s.port.Serve(ln, func(nc net.Conn) *conn { return newConn(s, nc) })
}

// Close stops accepting, closes every connection and waits for them.
// Sessions live on; their clients reconnect to other servers.
func (s *Server) Close() error {
	s.port.Close()
	return nil
}

// ConnCount returns the number of open connections.
func (s *Server) ConnCount() int { return s.port.Count() }

// ServeTLS accepts connections on ln like Serve, each speaking TLS with
// cfg first: ZooKeeper's secureClientPort. A client whose certificate cfg
// verified (set ClientCAs and ClientAuth) gets the identity x509:SUBJECT,
// its certificate's subject in RFC 2253 form, as ZooKeeper's
// X509AuthenticationProvider gives it.
func (s *Server) ServeTLS(ln net.Listener, cfg *tls.Config) error {
	return s.Serve(tls.NewListener(ln, cfg))
}

// Accepting reports whether the port takes connections: false while
// accept fails (out of file descriptors, say) and after Close.
func (s *Server) Accepting() bool { return s.port.Accepting() }

// ConnsRefused counts connections closed at once for exceeding MaxConns
// or MaxConnsPerIP.
func (s *Server) ConnsRefused() uint64 { return s.port.Refused() }

func (s *Server) connList() []*conn { return s.port.Conns() }

// attach makes c its session's connection here, closing an earlier one
// (waiting for it within ctx) and dropping that one's watches (the client
// re-registers them).
func (s *Server) attach(ctx context.Context, c *conn) error {
	return s.sessions.Attach(ctx, s.n, uint64(c.session), c, func(old *conn) <-chan struct{} {
		old.close()
		return old.Done
	})
}

// detach forgets c as its session's connection, dropping the session's
// watches here unless another connection took it over.
func (s *Server) detach(c *conn) { s.sessions.Detach(s.n, uint64(c.session), c) }
