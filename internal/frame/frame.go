// Package frame is the framing shared by Grove's peer transport (package
// transport) and its native client protocol: a 4-byte big-endian length,
// a version byte, a type byte, the payload. Package transport documents and
// re-exports it.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtocolVersion is the version byte of every frame this build writes, and
// the only one it reads.
const ProtocolVersion byte = 1

// FrameType says what a frame's payload is.
type FrameType byte

// Frame types. Every connection starts with a hello each way; then the
// dialler sends either message frames, or one snapshot (begin, chunks, end)
// answered by one ack.
const (
	// FrameHello carries a msgpack hello: sender's raft ID, the ID it
	// expects to talk to, and its protocol version.
	FrameHello FrameType = 1
	// FrameMessage carries one raw message for Handler.Receive.
	FrameMessage FrameType = 2
	// FrameSnapshotBegin carries msgpack: the snapshot header and the body
	// size, or -1 if unknown.
	FrameSnapshotBegin FrameType = 3
	// FrameSnapshotChunk carries raw snapshot body bytes.
	FrameSnapshotChunk FrameType = 4
	// FrameSnapshotEnd carries msgpack: the body size and its SHA-256.
	FrameSnapshotEnd FrameType = 5
	// FrameSnapshotAck carries msgpack: the receiver's verdict as an error
	// code.
	FrameSnapshotAck FrameType = 6
	// FrameClient carries one message of Grove's native client protocol
	// (client port; see package client). Peer connections refuse it.
	FrameClient FrameType = 16
)

// String names the frame type for logs.
func (t FrameType) String() string {
	switch t {
	case FrameHello:
		return "hello"
	case FrameMessage:
		return "message"
	case FrameSnapshotBegin:
		return "snapshot-begin"
	case FrameSnapshotChunk:
		return "snapshot-chunk"
	case FrameSnapshotEnd:
		return "snapshot-end"
	case FrameSnapshotAck:
		return "snapshot-ack"
	case FrameClient:
		return "client"
	}
	return fmt.Sprintf("frame(%d)", byte(t))
}

// Known reports whether t is a frame type this build reads.
func (t FrameType) Known() bool {
	return t >= FrameHello && t <= FrameSnapshotAck || t == FrameClient
}

// DefaultMax bounds a frame's length prefix when a reader passes no limit:
// 16 MiB.
const DefaultMax = 16 << 20

const (
	// HeaderLen is the length prefix plus the version and type bytes.
	HeaderLen = 6
	// FrameOverhead is what the length prefix counts besides the payload.
	FrameOverhead = 2
	// maxWireFrame is the largest length a 4-byte prefix may carry.
	maxWireFrame = 1<<32 - 1
)

// Frame is one decoded frame. Payload is owned by the caller.
type Frame struct {
	Type    FrameType
	Payload []byte
}

// ReadFrame reads one frame from r:
//
//	[4-byte big-endian length of the rest][version][type][payload]
//
// The length counts the version and type bytes and the payload; it may not
// exceed max (DefaultMax if max <= 0). ReadFrame returns io.EOF if r
// ends before the first byte of a frame, and otherwise an error wrapping
// ErrFrameTooLarge, ErrBadVersion, ErrUnknownFrame or ErrTruncated (which
// also wraps io.ErrUnexpectedEOF when r ended mid-frame), or r's own error.
// An oversized or unknown frame is rejected before its payload is read.
func ReadFrame(r io.Reader, max int) (Frame, error) {
	var hdr [HeaderLen]byte
	t, n, err := ReadHeader(r, max, &hdr)
	if err != nil {
		return Frame{}, err
	}
	payload := make([]byte, n)
	if err := ReadPayload(r, payload); err != nil {
		return Frame{}, err
	}
	return Frame{Type: t, Payload: payload}, nil
}

// ReadHeader reads and checks a frame header into hdr and returns the frame
// type and payload length.
func ReadHeader(r io.Reader, max int, hdr *[HeaderLen]byte) (FrameType, int, error) {
	if max <= 0 {
		max = DefaultMax
	}
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, 0, io.EOF
		}
		return 0, 0, Truncated(err)
	}
	length := uint64(binary.BigEndian.Uint32(hdr[:4]))
	if length > uint64(max) {
		return 0, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, length, max)
	}
	if length < FrameOverhead {
		return 0, 0, fmt.Errorf("%w: length %d is shorter than the frame header", ErrTruncated, length)
	}
	if _, err := io.ReadFull(r, hdr[4:]); err != nil {
		return 0, 0, Truncated(err)
	}
	if hdr[4] != ProtocolVersion {
		return 0, 0, fmt.Errorf("%w: %d, want %d", ErrBadVersion, hdr[4], ProtocolVersion)
	}
	t := FrameType(hdr[5])
	if !t.Known() {
		return 0, 0, fmt.Errorf("%w: %d", ErrUnknownFrame, hdr[5])
	}
	return t, int(length - FrameOverhead), nil
}

// ReadPayload fills p from r, mapping an early end to ErrTruncated.
func ReadPayload(r io.Reader, p []byte) error {
	if _, err := io.ReadFull(r, p); err != nil {
		return Truncated(err)
	}
	return nil
}

// Truncated wraps an error of io.ReadFull met inside a frame.
func Truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrTruncated, io.ErrUnexpectedEOF)
	}
	return err
}

// PutHeader encodes the header of a frame with n payload bytes.
func PutHeader(hdr *[HeaderLen]byte, t FrameType, n int) {
	binary.BigEndian.PutUint32(hdr[:4], uint32(n+FrameOverhead))
	hdr[4] = ProtocolVersion
	hdr[5] = byte(t)
}

// AppendFrame appends the encoding of a frame to dst and returns the
// extended slice. It checks only what the 4-byte length prefix can carry
// (ErrFrameTooLarge), not any MaxFrameSize.
func AppendFrame(dst []byte, t FrameType, payload []byte) ([]byte, error) {
	if len(payload) > maxWireFrame-FrameOverhead {
		return dst, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(payload))
	}
	var hdr [HeaderLen]byte
	PutHeader(&hdr, t, len(payload))
	dst = append(dst, hdr[:]...)
	return append(dst, payload...), nil
}

// WriteFrame writes one frame to w: the header and then the payload, in two
// writes (wrap w in a bufio.Writer to batch them).
func WriteFrame(w io.Writer, t FrameType, payload []byte) error {
	if len(payload) > maxWireFrame-FrameOverhead {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(payload))
	}
	var hdr [HeaderLen]byte
	PutHeader(&hdr, t, len(payload))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// Frame decoding errors, wrapped with detail by Read.
var (
	// ErrFrameTooLarge is returned when a frame's length prefix exceeds the
	// reader's limit, or a payload cannot fit in one frame.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrBadVersion is returned for a frame whose protocol version this
	// build does not speak.
	ErrBadVersion = errors.New("transport: unsupported protocol version")
	// ErrUnknownFrame is returned for a frame type byte this build does not
	// know.
	ErrUnknownFrame = errors.New("transport: unknown frame type")
	// ErrTruncated is returned when the stream ends inside a frame, or a
	// length prefix is too short to hold the frame header. A mid-frame end
	// of stream also wraps io.ErrUnexpectedEOF.
	ErrTruncated = errors.New("transport: truncated frame")
)
