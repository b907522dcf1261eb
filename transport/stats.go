package transport

import "sync/atomic"

// Stats are the transport's counters since New, for metrics. Every field
// only grows.
type Stats struct {
	// MessagesSent counts messages written and flushed to a peer's socket.
	MessagesSent uint64
	// MessagesReceived counts messages handed to Handler.Receive.
	MessagesReceived uint64
	// MessagesDropped counts messages Send dropped (queue full, peer unknown
	// or removed, message too large, transport closed) and messages lost
	// with a failed connection or dial.
	MessagesDropped uint64
	// FramesRejected counts inbound connections closed for malformed,
	// oversized, truncated or out-of-place frames.
	FramesRejected uint64
	// HandshakeFailures counts connections, either way, whose TLS handshake
	// or hello exchange failed (bad certificate, wrong peer, missing or
	// wrong cluster-key proof, timeout).
	HandshakeFailures uint64
	// AuthFailures counts the HandshakeFailures that were a missing or
	// wrong cluster-key proof.
	AuthFailures uint64
	// ConnsRefused counts inbound connections closed at once because
	// MaxInbound were open.
	ConnsRefused uint64
	// Connects counts outbound connections established (handshake done).
	Connects uint64
	// Reconnects counts the Connects to a peer that had been connected
	// before.
	Reconnects uint64
	// DialFailures counts outbound connection attempts that failed.
	DialFailures uint64
	// SnapshotsSent and SnapshotsReceived count snapshots acknowledged as
	// stored; SnapshotsFailed counts failed transfers, either way.
	SnapshotsSent     uint64
	SnapshotsReceived uint64
	SnapshotsFailed   uint64
	// SnapshotBytesSent and SnapshotBytesReceived count snapshot body bytes
	// moved, whether or not the transfer succeeded.
	SnapshotBytesSent     uint64
	SnapshotBytesReceived uint64
}

// counters is the live, atomic form of Stats.
type counters struct {
	messagesSent, messagesReceived, messagesDropped atomic.Uint64
	framesRejected, handshakeFailures               atomic.Uint64
	authFailures, connsRefused                      atomic.Uint64
	connects, reconnects, dialFailures              atomic.Uint64
	snapshotsSent, snapshotsReceived                atomic.Uint64
	snapshotsFailed                                 atomic.Uint64
	snapshotBytesSent, snapshotBytesReceived        atomic.Uint64
}

func (c *counters) load() Stats {
	return Stats{
		MessagesSent:          c.messagesSent.Load(),
		MessagesReceived:      c.messagesReceived.Load(),
		MessagesDropped:       c.messagesDropped.Load(),
		FramesRejected:        c.framesRejected.Load(),
		HandshakeFailures:     c.handshakeFailures.Load(),
		AuthFailures:          c.authFailures.Load(),
		ConnsRefused:          c.connsRefused.Load(),
		Connects:              c.connects.Load(),
		Reconnects:            c.reconnects.Load(),
		DialFailures:          c.dialFailures.Load(),
		SnapshotsSent:         c.snapshotsSent.Load(),
		SnapshotsReceived:     c.snapshotsReceived.Load(),
		SnapshotsFailed:       c.snapshotsFailed.Load(),
		SnapshotBytesSent:     c.snapshotBytesSent.Load(),
		SnapshotBytesReceived: c.snapshotBytesReceived.Load(),
	}
}
