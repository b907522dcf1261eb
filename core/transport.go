package core

import (
	"context"
	"io"
)

// Transport carries messages between the nodes of a cluster. The core knows
// nothing about sockets; implementations are the TCP transport (package
// transport) and the in-memory one for tests (package memtransport).
//
// All methods must be safe for concurrent use.
type Transport interface {
	// Start is called once by StartNode with the handler that receives
	// this node's inbound messages. AddPeer may be called before Start;
	// Send and SendSnapshot only after it.
	Start(h Handler) error
	// Send queues data for the peer with raft ID to. It never blocks: when
	// the peer's queue is full or it is unknown, the message is dropped and
	// the peer reported unreachable through Handler.ReportUnreachable. The
	// transport owns data after the call.
	Send(to uint64, data []byte)
	// SendSnapshot streams a snapshot to a peer: header (small) and then the
	// body until EOF. It blocks until the peer has received and stored the
	// whole stream or ctx ends, and returns an error if the stream failed.
	SendSnapshot(ctx context.Context, to uint64, header []byte, body io.Reader) error
	// AddPeer makes a peer reachable at addr, or updates its address.
	AddPeer(id uint64, addr string)
	// RemovePeer forgets a peer and drops its queue.
	RemovePeer(id uint64)
	// Close stops the transport and waits for its goroutines. Idempotent.
	Close() error
}

// Handler is the node side of a Transport. Its methods are safe for
// concurrent use.
type Handler interface {
	// Receive takes one inbound message from the peer with raft ID from:
	// the ID the connection authenticated as (cluster key or certificate),
	// never an ID read from the message itself. The handler drops a message
	// that claims another sender. It does not block: if the node is
	// overloaded the message is dropped (raft tolerates loss). data is owned
	// by the handler after the call.
	Receive(from uint64, data []byte)
	// ReceiveSnapshot consumes a streamed snapshot from the peer with
	// authenticated raft ID from until EOF and stores it durably before
	// returning nil. It returns an error for a stream that is truncated,
	// corrupt, stale or sent by another node than its header claims.
	ReceiveSnapshot(ctx context.Context, from uint64, header []byte, body io.Reader) error
	// ReportUnreachable tells raft a peer could not be reached.
	ReportUnreachable(id uint64)
}
