package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/grovekit/grove/internal/frame"
)

// Defaults of DefaultConfig; zero Config fields take them.
const (
	// DefaultMaxFrameSize bounds a frame's length prefix: 16 MiB.
	DefaultMaxFrameSize = frame.DefaultMax
	// DefaultQueueSize is the number of messages queued per peer.
	DefaultQueueSize = 4096
	// DefaultSnapshotChunkSize is the body bytes per snapshot chunk: 1 MiB.
	DefaultSnapshotChunkSize = 1 << 20
	// DefaultHandshakeTimeout bounds dialling plus the TLS and hello
	// exchanges of one connection.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultWriteTimeout bounds one blocked write to a peer.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultSnapshotIdleTimeout bounds each wait of a snapshot transfer.
	DefaultSnapshotIdleTimeout = 2 * time.Minute
	// DefaultBackoffMin is the first delay before redialling a peer, or
	// accepting again after a failed accept.
	DefaultBackoffMin = 10 * time.Millisecond
	// DefaultSnapshotRate is the default cap of a snapshot stream, bytes/s.
	DefaultSnapshotRate = 128 << 20
	// DefaultBackoffMax caps the delay that doubles from DefaultBackoffMin.
	DefaultBackoffMax = time.Second
	// DefaultMaxInbound caps the inbound connections open at once.
	DefaultMaxInbound = 256
)

// Config configures a TCP transport. New copies it; changing it afterwards
// has no effect. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// ID is this node's raft ID. It is sent in every hello and checked by
	// the peer. Required, non-zero.
	ID uint64
	// ListenAddr is the host:port to listen on for peers, e.g. ":7000" or
	// "127.0.0.1:0". Required unless Listener is set.
	ListenAddr string
	// Listener, if set, is used instead of listening on ListenAddr. The
	// transport owns it and closes it on Close. Accepted connections are
	// wrapped in TLS when TLS is set, so pass a plain listener.
	Listener net.Listener
	// Dialer opens connections to peers. It must honour ctx. Default: a
	// net.Dialer with TCP keep-alives. TLS, when set, is layered on top.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// TLS, if set, secures both sides. It needs Certificates; RootCAs to
	// verify peers' server certificates; and ClientCAs to require and verify
	// their client certificates (ClientAuth is then forced to
	// RequireAndVerifyClientCert). LoadTLS builds such a config. When
	// ServerName is empty, the host of the peer's address is verified.
	TLS *tls.Config
	// VerifyPeer, if set, is called on both sides of a TLS connection once
	// the hello has named the peer's raft ID, with the peer's verified
	// certificate: an error refuses the connection (ErrAuth). It binds a
	// certificate to the raft IDs it may speak for; without it any
	// certificate the CA signed may claim any ID. It must be safe for
	// concurrent use.
	VerifyPeer func(id uint64, cert *x509.Certificate) error
	// ClusterKey, if set, is the cluster's shared secret (at least 32
	// bytes): every connection, each way, proves that both ends hold it
	// before the acceptor reads a message, and the proofs bind both raft
	// IDs (see auth.go). Every node of a cluster needs the same key; a node
	// without one cannot talk to one with. It authenticates the ends, not
	// the traffic: TLS encrypts and protects the stream itself.
	ClusterKey []byte
	// MaxInbound caps the inbound connections open at once; the accept
	// loop closes any beyond it at once. A cluster needs two per peer (one
	// for messages, one for a snapshot). Default 256.
	MaxInbound int
	// MaxFrameSize bounds the length prefix of a frame (payload plus two
	// bytes), on both the receiving and the sending side: Send drops a
	// larger message. It must be the same on every node and exceed
	// SnapshotChunkSize. Default 16 MiB; at most 1 GiB.
	MaxFrameSize int
	// QueueSize is the number of messages queued for one peer; Send drops
	// beyond it. Default 4096.
	QueueSize int
	// SnapshotChunkSize is the number of body bytes per snapshot chunk. A
	// larger chunk means fewer frames and more memory per transfer. Default
	// 1 MiB.
	SnapshotChunkSize int
	// SnapshotRate caps a snapshot stream in bytes per second, so catching
	// a follower up leaves CPU, disk and network to the leader's write path
	// (at 128 MiB/s one 1 MiB chunk goes out every 8 ms; 300 MB take about
	// 2.5 s). Default 128 MiB/s; negative means no cap.
	SnapshotRate int64
	// HandshakeTimeout bounds dialling, the TLS handshake and the hello
	// exchange of one connection, on either side. Default 5s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one write to a peer that does not read; the
	// connection is then dropped and redialled. Default 10s.
	WriteTimeout time.Duration
	// SnapshotIdleTimeout bounds each wait of a snapshot transfer: the
	// receiver waiting for the sender's next bytes, and the sender waiting
	// for the receiver to store the snapshot (it fsyncs) once the last byte
	// is sent. Default 2m.
	SnapshotIdleTimeout time.Duration
	// BackoffMin and BackoffMax bound the exponential, jittered delay
	// between two dials of an unreachable peer, and between two failed
	// accepts. Defaults 10ms and 1s; BackoffMin must not exceed BackoffMax.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// Logger receives connection events and rejected input. Nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in; set ID and
// ListenAddr (or Listener) before passing it to New.
func DefaultConfig() Config {
	return Config{
		MaxFrameSize:        DefaultMaxFrameSize,
		QueueSize:           DefaultQueueSize,
		SnapshotChunkSize:   DefaultSnapshotChunkSize,
		SnapshotRate:        DefaultSnapshotRate,
		HandshakeTimeout:    DefaultHandshakeTimeout,
		WriteTimeout:        DefaultWriteTimeout,
		SnapshotIdleTimeout: DefaultSnapshotIdleTimeout,
		BackoffMin:          DefaultBackoffMin,
		BackoffMax:          DefaultBackoffMax,
		MaxInbound:          DefaultMaxInbound,
	}
}

// maxMaxFrameSize caps MaxFrameSize, so a bad config cannot make a peer
// allocate gigabytes per frame.
const maxMaxFrameSize = 1 << 30

// validate fills zero fields with defaults and rejects invalid ones.
func (c *Config) validate() error {
	d := DefaultConfig()
	fill := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fillDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&c.MaxFrameSize, d.MaxFrameSize)
	fill(&c.QueueSize, d.QueueSize)
	fill(&c.MaxInbound, d.MaxInbound)
	fill(&c.SnapshotChunkSize, d.SnapshotChunkSize)
	if c.SnapshotRate == 0 {
		c.SnapshotRate = d.SnapshotRate
	}
	fillDur(&c.HandshakeTimeout, d.HandshakeTimeout)
	fillDur(&c.WriteTimeout, d.WriteTimeout)
	fillDur(&c.SnapshotIdleTimeout, d.SnapshotIdleTimeout)
	fillDur(&c.BackoffMin, d.BackoffMin)
	fillDur(&c.BackoffMax, d.BackoffMax)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Dialer == nil {
		nd := &net.Dialer{KeepAlive: 15 * time.Second}
		c.Dialer = func(ctx context.Context, addr string) (net.Conn, error) {
			return nd.DialContext(ctx, "tcp", addr)
		}
	}
	switch {
	case c.ID == 0:
		return errors.New("transport: config: ID must be non-zero")
	case c.ListenAddr == "" && c.Listener == nil:
		return errors.New("transport: config: ListenAddr or Listener is required")
	case c.MaxFrameSize < 0 || c.MaxFrameSize > maxMaxFrameSize:
		return fmt.Errorf("transport: config: MaxFrameSize %d out of range (1..%d)", c.MaxFrameSize, maxMaxFrameSize)
	case c.ClusterKey != nil && len(c.ClusterKey) < minClusterKey:
		return fmt.Errorf("transport: config: ClusterKey has %d bytes; it needs at least %d", len(c.ClusterKey), minClusterKey)
	case c.MaxInbound < 0:
		return fmt.Errorf("transport: config: MaxInbound %d is negative", c.MaxInbound)
	case c.QueueSize < 0:
		return fmt.Errorf("transport: config: QueueSize %d is negative", c.QueueSize)
	case c.SnapshotChunkSize < 0 || c.SnapshotChunkSize+frameOverhead > c.MaxFrameSize:
		return fmt.Errorf("transport: config: SnapshotChunkSize %d must be positive and fit a frame of MaxFrameSize %d",
			c.SnapshotChunkSize, c.MaxFrameSize)
	case c.HandshakeTimeout < 0 || c.WriteTimeout < 0 || c.SnapshotIdleTimeout < 0:
		return errors.New("transport: config: timeouts must be positive")
	case c.BackoffMin < 0 || c.BackoffMax < c.BackoffMin:
		return fmt.Errorf("transport: config: backoff %v..%v is not a range", c.BackoffMin, c.BackoffMax)
	case c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil:
		return errors.New("transport: config: TLS needs a certificate")
	}
	return nil
}
