package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/grovekit/grove/internal/mpguard"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
)

// snapBegin is the payload of FrameSnapshotBegin.
type snapBegin struct {
	Header []byte `msgpack:"h"`
	Size   int64  `msgpack:"s"` // body bytes, or -1 if unknown
}

// snapEnd is the payload of FrameSnapshotEnd.
type snapEnd struct {
	Size int64  `msgpack:"s"` // body bytes sent
	Sum  []byte `msgpack:"h"` // SHA-256 of the body
}

// snapAck is the payload of FrameSnapshotAck: the receiver's verdict as an
// index into wireErrors (0 is success), or codeHandler with the grove.Code
// of the handler's error. Msg is for logs only.
type snapAck struct {
	Code  uint8      `msgpack:"c"`
	Grove grove.Code `msgpack:"g"`
	Msg   string     `msgpack:"m"`
}

func ackFor(err error) snapAck {
	if err == nil {
		return snapAck{}
	}
	for i, e := range wireErrors {
		if e != nil && errors.Is(err, e) {
			return snapAck{Code: uint8(i), Msg: err.Error()}
		}
	}
	return snapAck{Code: codeHandler, Grove: grove.ErrorCode(err), Msg: err.Error()}
}

// err maps the ack back to the sentinel the receiver reported.
func (a snapAck) err() error {
	switch {
	case a.Code == 0:
		return nil
	case a.Code == codeHandler:
		if err := grove.CodeError(a.Grove); err != nil {
			return err
		}
		return grove.ErrSystemError
	case int(a.Code) < len(wireErrors):
		return wireErrors[a.Code]
	}
	return fmt.Errorf("%w: unknown snapshot ack code %d", ErrBadPayload, a.Code)
}

// SendSnapshot streams header and then body, until EOF, to peer to over a
// connection of its own, in chunks of SnapshotChunkSize followed by the
// SHA-256 of the body, and waits for the peer to store it. TCP flow control
// paces the stream. It returns nil once the peer acknowledged the snapshot,
// and otherwise an error wrapping ErrSnapshotFailed and the cause:
// ErrUnknownPeer, ErrClosed, ctx's error, a dial, read or write error, or
// the sentinel the receiver reported (ErrChecksum, ErrTruncated, or the
// grove sentinel of its handler's error). Ending ctx aborts the transfer.
// body is read in the calling goroutine, so a Read that blocks delays the
// return past ctx's end until it completes.
func (t *TCP) SendSnapshot(ctx context.Context, to uint64, header []byte, body io.Reader) error {
	err := t.sendSnapshot(ctx, to, header, body)
	if err != nil {
		t.stats.snapshotsFailed.Add(1)
		return fmt.Errorf("transport: snapshot to peer %d: %w: %w", to, ErrSnapshotFailed, err)
	}
	t.stats.snapshotsSent.Add(1)
	return nil
}

func (t *TCP) sendSnapshot(ctx context.Context, to uint64, header []byte, body io.Reader) error {
	addr, ok := t.peerAddr(to)
	if !ok {
		if t.ctx.Err() != nil {
			return ErrClosed
		}
		return ErrUnknownPeer
	}
	ctx, release := t.linked(ctx)
	defer release()
	c, err := t.connect(ctx, to, addr)
	if err == nil {
		err = t.streamSnapshot(ctx, c, header, body)
		c.close()
	}
	switch {
	case err == nil:
		return nil
	case t.ctx.Err() != nil:
		return ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}

// pace sleeps as long as sending n bytes since start ran ahead of
// SnapshotRate, so a stream leaves CPU, disk and network to the write path.
func (t *TCP) pace(ctx context.Context, start time.Time, n int64) error {
	rate := t.cfg.SnapshotRate
	if rate <= 0 {
		return nil
	}
	ahead := time.Until(start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second))))
	if ahead <= 0 {
		return nil
	}
	timer := time.NewTimer(ahead)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// streamSnapshot writes begin, chunks and end, and reads the ack.
func (t *TCP) streamSnapshot(ctx context.Context, c *conn, header []byte, body io.Reader) error {
	size := int64(-1)
	if l, ok := body.(interface{ Len() int }); ok {
		size = int64(l.Len())
	}
	if err := t.writeControl(c, FrameSnapshotBegin, snapBegin{Header: header, Size: size}); err != nil {
		return err
	}
	buf := make([]byte, t.cfg.SnapshotChunkSize)
	sum := sha256.New()
	var n int64
	start := time.Now()
	for {
		k, rerr := io.ReadFull(body, buf)
		if k > 0 {
			sum.Write(buf[:k])
			if err := c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout)); err != nil {
				return err
			}
			if err := c.fw.write(FrameSnapshotChunk, buf[:k]); err != nil {
				return err
			}
			// Flush each chunk: a slow body must not leave one waiting.
			if err := c.fw.w.Flush(); err != nil {
				return err
			}
			n += int64(k)
			t.stats.snapshotBytesSent.Add(uint64(k))
			if err := t.pace(ctx, start, n); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read snapshot body: %w", rerr)
		}
	}
	if err := t.writeControl(c, FrameSnapshotEnd, snapEnd{Size: n, Sum: sum.Sum(nil)}); err != nil {
		return err
	}
	if err := c.fw.w.Flush(); err != nil {
		return err
	}
	if err := c.SetReadDeadline(time.Now().Add(t.cfg.SnapshotIdleTimeout)); err != nil {
		return err
	}
	f, err := c.fr.frame()
	if err != nil {
		return fmt.Errorf("read snapshot ack: %w", err)
	}
	if f.Type != FrameSnapshotAck {
		return fmt.Errorf("%w: %v instead of a snapshot ack", ErrUnexpectedFrame, f.Type)
	}
	var ack snapAck
	if err := mpguard.Unmarshal(f.Payload, &ack); err != nil {
		return fmt.Errorf("%w: snapshot ack: %w", ErrBadPayload, err)
	}
	if err := ack.err(); err != nil {
		return fmt.Errorf("peer refused the snapshot (%s): %w", ack.Msg, err)
	}
	return nil
}

// writeControl writes a frame with a msgpack payload, under WriteTimeout.
func (t *TCP) writeControl(c *conn, typ FrameType, v any) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return err
	}
	if len(b)+frameOverhead > t.cfg.MaxFrameSize {
		return fmt.Errorf("%w: %v of %d bytes", ErrFrameTooLarge, typ, len(b))
	}
	if err := c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout)); err != nil {
		return err
	}
	return c.fw.write(typ, b)
}

// receiveSnapshot runs the receiving end of a snapshot whose begin frame,
// of n payload bytes, is next on c: it hands the stream to the handler,
// drains what the handler left unread so the checksum is always checked,
// and answers with an ack. A snapshot connection carries one snapshot, so
// it ends here; the error is that of a broken stream, when no ack can be
// sent.
func (t *TCP) receiveSnapshot(h core.Handler, c *conn, from uint64, n int) error {
	payload := make([]byte, n)
	if err := readPayload(c.fr.r, payload); err != nil {
		return err
	}
	var b snapBegin
	if err := mpguard.Unmarshal(payload, &b); err != nil {
		return fmt.Errorf("%w: snapshot-begin: %w", ErrBadPayload, err)
	}
	sr := &snapReader{
		conn: c, fr: &c.fr, idle: t.cfg.SnapshotIdleTimeout,
		want: b.Size, sum: sha256.New(), bytes: &t.stats.snapshotBytesReceived,
	}
	err := h.ReceiveSnapshot(t.ctx, from, b.Header, sr)
	if _, derr := io.Copy(io.Discard, sr); err == nil {
		err = derr
	}
	if sr.broken() {
		t.stats.snapshotsFailed.Add(1)
		return sr.err
	}
	if err != nil {
		t.stats.snapshotsFailed.Add(1)
		t.log.Warn("transport: snapshot refused", slog.Uint64("peer", from), "size", sr.n, "err", err)
	} else {
		t.stats.snapshotsReceived.Add(1)
		t.log.Info("transport: snapshot received", slog.Uint64("peer", from), "size", sr.n)
	}
	if err := t.writeControl(c, FrameSnapshotAck, ackFor(err)); err != nil {
		return err
	}
	return c.fw.w.Flush()
}

// snapReader is the body handed to Handler.ReceiveSnapshot: it reads the
// chunk frames straight from the connection, hashing them, and at the end
// frame returns io.EOF if size and SHA-256 match, or an error wrapping
// ErrChecksum. A broken stream (a frame error, an early end) surfaces as
// the corresponding error, e.g. ErrTruncated.
type snapReader struct {
	conn  net.Conn
	fr    *frameReader
	idle  time.Duration  // bound of one wait for the sender
	want  int64          // size announced by snapshot-begin, or -1
	sum   hash.Hash      // SHA-256 of the bytes read so far
	n     int64          // bytes read so far
	left  int            // unread bytes of the current chunk
	err   error          // sticky: io.EOF after a good end
	bytes *atomic.Uint64 // Stats.SnapshotBytesReceived
}

// Read implements io.Reader.
func (s *snapReader) Read(p []byte) (int, error) {
	for s.left == 0 && s.err == nil {
		s.next()
	}
	if s.err != nil {
		return 0, s.err
	}
	if len(p) > s.left {
		p = p[:s.left]
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(s.idle)); err != nil {
		s.err = err
		return 0, err
	}
	k, err := s.fr.r.Read(p)
	s.sum.Write(p[:k])
	s.n += int64(k)
	s.left -= k
	s.bytes.Add(uint64(k))
	if err != nil && s.left > 0 {
		s.err = truncated(err)
		if k == 0 {
			return 0, s.err
		}
	}
	return k, nil
}

// next reads the next frame header: a chunk opens, the end frame is
// checked, anything else breaks the stream.
func (s *snapReader) next() {
	if err := s.conn.SetReadDeadline(time.Now().Add(s.idle)); err != nil {
		s.err = err
		return
	}
	typ, n, err := s.fr.header()
	switch {
	case errors.Is(err, io.EOF):
		s.err = truncated(err)
		return
	case err != nil:
		s.err = err
		return
	case typ == FrameSnapshotChunk:
		s.left = n
		return
	case typ != FrameSnapshotEnd:
		s.err = fmt.Errorf("%w: %v inside a snapshot", ErrUnexpectedFrame, typ)
		return
	}
	payload := make([]byte, n)
	if err := readPayload(s.fr.r, payload); err != nil {
		s.err = err
		return
	}
	var e snapEnd
	if err := mpguard.Unmarshal(payload, &e); err != nil {
		s.err = fmt.Errorf("%w: snapshot-end: %w", ErrBadPayload, err)
		return
	}
	got := s.sum.Sum(nil)
	switch {
	case e.Size != s.n || (s.want >= 0 && s.want != s.n):
		s.err = fmt.Errorf("%w: received %d bytes, sender announced %d and sent %d", ErrChecksum, s.n, s.want, e.Size)
	case !bytes.Equal(e.Sum, got):
		s.err = fmt.Errorf("%w: SHA-256 %x, sender's %x", ErrChecksum, got, e.Sum)
	default:
		s.err = io.EOF
	}
}

// broken reports whether the stream failed before its end frame, so no ack
// can follow.
func (s *snapReader) broken() bool {
	return !errors.Is(s.err, io.EOF) && !errors.Is(s.err, ErrChecksum)
}
