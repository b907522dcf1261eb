// Package transport is Grove's TCP peer transport: a core.Transport that
// carries raft messages and snapshot streams between nodes as
// length-prefixed frames, optionally over mutual TLS.
//
// # Usage
//
//	cfg := transport.DefaultConfig()
//	cfg.ID = 1
//	cfg.ListenAddr = ":7001"
//	cfg.TLS, err = transport.LoadTLS("ca.pem", "node1.pem", "node1-key.pem") // optional
//	tr, err := transport.New(cfg) // listens at once; tr.Addr() is the bound address
//	...
//	nodeCfg.Transport = tr // core.StartNode calls AddPeer for the initial peers, then Start
//	...
//	defer tr.Close()
//
// Peers are added by raft ID and host:port (AddPeer), and moved or removed
// as membership changes. Stats returns counters for metrics.
//
// # Wire format
//
// Every frame is
//
//	[4-byte big-endian length of the rest][1 byte ProtocolVersion][1 byte FrameType][payload]
//
// and the length may not exceed the receiver's MaxFrameSize (1 KiB until
// the handshake is done). Each connection opens with a hello each way
// (msgpack: sender's raft ID, the ID it expects at the other end, protocol
// version), so a node that answers at a stale address is refused
// (ErrWrongPeer). With a ClusterKey the hellos carry nonces and HMAC proofs
// and the dialler sends a third hello with its proof (auth.go); a missing
// or wrong proof is ErrAuth, and the acceptor reads no message before the
// proof. Handler.Receive is told the raft ID the connection authenticated
// as. After the hello the dialler
// sends either message frames, each handed to Handler.Receive, or exactly
// one snapshot: snapshot-begin (header, size if known), snapshot-chunks,
// snapshot-end (size and SHA-256 of the body), answered by a snapshot-ack
// whose error code maps back to the receiver's sentinel error.
//
// # Messages
//
// Send never blocks. Each peer has a bounded queue (QueueSize) drained by
// one writer goroutine over one connection, dialled on the first message and
// redialled with jittered exponential backoff (BackoffMin..BackoffMax). The
// writer flushes whenever its queue is momentarily empty, so a burst shares
// a syscall. A message that finds the queue full, or an unknown peer, is
// dropped and the peer reported through Handler.ReportUnreachable; so is
// every failed connection. Messages are delivered in order per connection;
// a message in flight when a connection breaks may be lost (raft tolerates
// loss).
//
// # Snapshots
//
// SendSnapshot opens a connection of its own and blocks until the peer's
// Handler.ReceiveSnapshot stored the stream, or ctx ends. TCP flow control
// paces the sender. The receiver's reader returns an error wrapping
// ErrChecksum instead of io.EOF when the body does not match the sender's
// size and SHA-256, so the handler discards it; the sender then gets an
// error wrapping ErrSnapshotFailed and ErrChecksum.
//
// # Caveats
//
// Invalid input (an oversized, malformed, truncated or out-of-place frame,
// a bad hello, a failed TLS handshake) closes only the connection that
// carried it; the error is logged and counted (Stats.FramesRejected,
// Stats.HandshakeFailures). With TLS, a peer is trusted for any raft ID
// once its certificate verifies: the certificate is not bound to the ID.
// The cluster key authenticates the ends of a connection, not the stream:
// without TLS the traffic is readable and, by someone on the path, alterable.
package transport
