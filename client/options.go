package client

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"
)

// Option configures a Session.
type Option func(*options)

type options struct {
	timeout     time.Duration
	chroot      string
	auth        []authCred
	logger      *slog.Logger
	eventBuffer int
	tls         *tls.Config
	dialer      func(ctx context.Context, addr string) (net.Conn, error)
	failFast    bool
}

type authCred struct {
	scheme string
	cred   []byte
}

func defaultOptions() options {
	return options{timeout: 10 * time.Second, eventBuffer: 64, logger: slog.New(slog.DiscardHandler)}
}

// WithTimeout asks for a session timeout (default 10s); the cluster clamps
// it to its configured bounds.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithChroot roots every path of the session at prefix (e.g. "/app"):
// "/x" means "/app/x" on the cluster, and paths coming back are relative.
func WithChroot(prefix string) Option { return func(o *options) { o.chroot = prefix } }

// WithAuth authenticates the session at once (see Session.AddAuth).
func WithAuth(scheme string, cred []byte) Option {
	return func(o *options) { o.auth = append(o.auth, authCred{scheme, cred}) }
}

// WithLogger sets the session's logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithEventBuffer sets the buffer of Events() and of each persistent
// watch's channel (default 64). Persistent watches queue beyond it without
// dropping; Events drops the oldest state change when full.
func WithEventBuffer(n int) Option { return func(o *options) { o.eventBuffer = n } }

// WithTLS makes Dial speak TLS to the client ports with cfg (its
// ServerName defaults to the host of the address dialled).
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithFailFast makes Dial give up, with ErrNoServerListening, once every
// server has refused the connection for FailFastGrace (nothing listens at
// any address: a wrong port, or no server running) instead of retrying
// until its context ends. The grace covers a server that is starting
// (grove server & followed at once by a command). Servers that time out or answer still get retried. For tools such
// as the grove CLI; a service that starts before its cluster should not
// use it.
func WithFailFast() Option { return func(o *options) { o.failFast = true } }

// ErrNoServerListening is Dial's error under WithFailFast when every server
// refused the connection; it wraps the last refusal.
var ErrNoServerListening = errors.New("client: no server is listening")

// FailFastGrace is how long every server must have refused before
// WithFailFast gives up.
const FailFastGrace = time.Second

// WithDialer makes Dial open connections with dial instead of a plain TCP
// dialer (for proxies, custom timeouts or tests).
func WithDialer(dial func(ctx context.Context, addr string) (net.Conn, error)) Option {
	return func(o *options) { o.dialer = dial }
}
