package transport

import (
	"bufio"
	"io"

	"github.com/grovekit/grove/internal/frame"
)

// ProtocolVersion is the version byte of every frame this build writes, and
// the only one it reads.
const ProtocolVersion = frame.ProtocolVersion

// FrameType says what a frame's payload is.
type FrameType = frame.FrameType

// Frame types. Every peer connection starts with a hello each way; then the
// dialler sends either message frames, or one snapshot (begin, chunks, end)
// answered by one ack. Client ports speak FrameClient only.
const (
	// FrameHello carries a msgpack hello: sender's raft ID, the ID it
	// expects to talk to, and its protocol version.
	FrameHello = frame.FrameHello
	// FrameMessage carries one raw message for Handler.Receive.
	FrameMessage = frame.FrameMessage
	// FrameSnapshotBegin carries msgpack: the snapshot header and the body
	// size, or -1 if unknown.
	FrameSnapshotBegin = frame.FrameSnapshotBegin
	// FrameSnapshotChunk carries raw snapshot body bytes.
	FrameSnapshotChunk = frame.FrameSnapshotChunk
	// FrameSnapshotEnd carries msgpack: the body size and its SHA-256.
	FrameSnapshotEnd = frame.FrameSnapshotEnd
	// FrameSnapshotAck carries msgpack: the receiver's verdict as an error
	// code.
	FrameSnapshotAck = frame.FrameSnapshotAck
	// FrameClient carries one message of Grove's native client protocol.
	// Peer connections refuse it.
	FrameClient = frame.FrameClient
)

// Frame is one decoded frame. Payload is owned by the caller.
type Frame = frame.Frame

// ReadFrame reads one frame from r:
//
//	[4-byte big-endian length of the rest][version][type][payload]
//
// The length counts the version and type bytes and the payload; it may not
// exceed max (DefaultMaxFrameSize if max <= 0). ReadFrame returns io.EOF if r
// ends before the first byte of a frame, and otherwise an error wrapping
// ErrFrameTooLarge, ErrBadVersion, ErrUnknownFrame or ErrTruncated (which
// also wraps io.ErrUnexpectedEOF when r ended mid-frame), or r's own error.
// An oversized or unknown frame is rejected before its payload is read.
func ReadFrame(r io.Reader, max int) (Frame, error) { return frame.ReadFrame(r, max) }

// AppendFrame appends the encoding of a frame to dst and returns the
// extended slice. It checks only what the 4-byte length prefix can carry
// (ErrFrameTooLarge), not any MaxFrameSize.
func AppendFrame(dst []byte, t FrameType, payload []byte) ([]byte, error) {
	return frame.AppendFrame(dst, t, payload)
}

// WriteFrame writes one frame to w: the header and then the payload, in two
// writes (wrap w in a bufio.Writer to batch them).
func WriteFrame(w io.Writer, t FrameType, payload []byte) error {
	return frame.WriteFrame(w, t, payload)
}

// frameOverhead is what a frame's length prefix counts besides the payload.
const frameOverhead = frame.FrameOverhead

var (
	readPayload = frame.ReadPayload
	truncated   = frame.Truncated
)

// frameReader reads the frames of one connection through a buffer, reusing
// its header scratch space.
type frameReader struct {
	r   *bufio.Reader
	max int
	hdr [frame.HeaderLen]byte
}

// header reads the next frame header; the caller then reads n payload bytes
// from fr.r.
func (fr *frameReader) header() (t FrameType, n int, err error) {
	return frame.ReadHeader(fr.r, fr.max, &fr.hdr)
}

// frame reads the next whole frame into a fresh payload.
func (fr *frameReader) frame() (Frame, error) {
	t, n, err := fr.header()
	if err != nil {
		return Frame{}, err
	}
	payload := make([]byte, n)
	if err := frame.ReadPayload(fr.r, payload); err != nil {
		return Frame{}, err
	}
	return Frame{Type: t, Payload: payload}, nil
}

// frameWriter writes frames of one connection into a buffer, reusing its
// header scratch space. The caller flushes.
type frameWriter struct {
	w   *bufio.Writer
	hdr [frame.HeaderLen]byte
}

func (fw *frameWriter) write(t FrameType, payload []byte) error {
	frame.PutHeader(&fw.hdr, t, len(payload))
	if _, err := fw.w.Write(fw.hdr[:]); err != nil {
		return err
	}
	_, err := fw.w.Write(payload)
	return err
}
