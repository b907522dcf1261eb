package transport

import (
	"errors"

	"github.com/grovekit/grove/internal/frame"
)

// Frame decoding errors. ReadFrame returns them wrapped with detail; an
// inbound connection that produces one is closed, the error is logged and
// counted in Stats.FramesRejected, and the transport carries on.
var (
	// ErrFrameTooLarge is returned when a frame's length prefix exceeds the
	// receiver's MaxFrameSize, or when Send is given a message that cannot
	// fit in one frame.
	ErrFrameTooLarge = frame.ErrFrameTooLarge
	// ErrBadVersion is returned for a frame or hello whose protocol version
	// this build does not speak.
	ErrBadVersion = frame.ErrBadVersion
	// ErrUnknownFrame is returned for a frame type byte this build does not
	// know.
	ErrUnknownFrame = frame.ErrUnknownFrame
	// ErrTruncated is returned when the stream ends inside a frame, or a
	// length prefix is too short to hold the frame header. A mid-frame end of
	// stream also wraps io.ErrUnexpectedEOF.
	ErrTruncated = frame.ErrTruncated
	// ErrUnexpectedFrame is returned for a well-formed frame that is not
	// valid at this point of the conversation: anything but hello as the
	// first frame, a second hello, or a snapshot chunk outside a snapshot.
	ErrUnexpectedFrame = errors.New("transport: unexpected frame")
	// ErrBadPayload is returned when the msgpack payload of a hello or
	// snapshot control frame does not decode, or a hello names raft ID 0.
	ErrBadPayload = errors.New("transport: malformed frame payload")
)

// Peer and snapshot errors.
var (
	// ErrWrongPeer is returned when the node answering at a peer's address
	// has another raft ID than the one it was dialled for, or a hello is
	// addressed to another node.
	ErrWrongPeer = errors.New("transport: connected to the wrong peer")
	// ErrAuth is returned when the other end of a connection did not prove
	// it holds the cluster key (Config.ClusterKey): no proof, a wrong one,
	// or a proof where this node has no key.
	ErrAuth = errors.New("transport: peer failed authentication")
	// ErrUnknownPeer is returned by SendSnapshot for a peer that was never
	// added or has been removed.
	ErrUnknownPeer = errors.New("transport: unknown peer")
	// ErrChecksum is returned by the snapshot reader handed to
	// Handler.ReceiveSnapshot when the stream's SHA-256 or size does not
	// match the sender's; the handler must discard what it stored. A sender
	// whose snapshot was refused for this reason gets an error wrapping both
	// ErrSnapshotFailed and ErrChecksum.
	ErrChecksum = errors.New("transport: snapshot checksum mismatch")
	// ErrSnapshotFailed is wrapped by every error SendSnapshot returns,
	// together with the cause: a dial or write error, ctx's error, or the
	// sentinel the receiver reported in its ack (ErrChecksum, ErrTruncated,
	// or the grove sentinel of the handler's error).
	ErrSnapshotFailed = errors.New("transport: snapshot transfer failed")
	// ErrClosed is returned by Start and SendSnapshot after Close.
	ErrClosed = errors.New("transport: closed")
	// ErrStarted is returned by Start when called more than once.
	ErrStarted = errors.New("transport: already started")
)

// wireErrors maps the transport's sentinels to the codes a snapshot ack
// carries (their index). Code 0 is success; codeHandler means the handler
// failed and the ack carries its grove.Code. Append only: the indexes are
// wire format.
var wireErrors = []error{
	nil,
	ErrChecksum,
	ErrTruncated,
	ErrFrameTooLarge,
	ErrBadVersion,
	ErrUnknownFrame,
	ErrUnexpectedFrame,
	ErrBadPayload,
}

// codeHandler marks an ack for a snapshot the receiving handler refused.
const codeHandler = 255
