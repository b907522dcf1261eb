package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/grovekit/grove"
)

func TestSnapshotStream(t *testing.T) {
	data := make([]byte, 20<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	a, _ := MustTransport(t, 1, nil)
	b, hb := MustTransport(t, 2, nil)
	connectAll(a, b)
	for _, tt := range []struct {
		name string
		body io.Reader
	}{
		{"known size", bytes.NewReader(data)},
		{"unknown size", struct{ io.Reader }{bytes.NewReader(data)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.SendSnapshot(t.Context(), 2, []byte("hdr"), tt.body); err != nil {
				t.Fatalf("SendSnapshot: %v", err)
			}
			got := MustReceive(t, hb.snaps, "snapshot")
			if got.err != nil || got.sum != want || got.n != int64(len(data)) || string(got.header) != "hdr" {
				t.Fatalf("received %d bytes, err %v, header %q; equal=%v", got.n, got.err, got.header, got.sum == want)
			}
		})
	}
	if s := a.Stats(); s.SnapshotsSent != 2 || s.SnapshotBytesSent != 2*uint64(len(data)) {
		t.Fatalf("sender stats %+v", s)
	}
	if s := b.Stats(); s.SnapshotsReceived != 2 || s.SnapshotBytesReceived != 2*uint64(len(data)) {
		t.Fatalf("receiver stats %+v", s)
	}
}

func TestSnapshotEmpty(t *testing.T) {
	a, _ := MustTransport(t, 1, nil)
	b, hb := MustTransport(t, 2, nil)
	connectAll(a, b)
	if err := a.SendSnapshot(t.Context(), 2, nil, bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	if got := MustReceive(t, hb.snaps, "snapshot"); got.err != nil || got.n != 0 {
		t.Fatalf("got %+v", got)
	}
}

// TestSnapshotBadChecksum sends a snapshot whose end frame lies about the
// SHA-256: the handler's reader fails with ErrChecksum, the ack says so, and
// the transport goes on.
func TestSnapshotBadChecksum(t *testing.T) {
	a, _ := MustTransport(t, 1, nil)
	b, hb := MustTransport(t, 2, nil)
	connectAll(a, b)
	body := []byte("snapshot body")
	c := MustRawConn(t, b.Addr().String(), 7, 2)
	mustWrite(t, c, encodeFrame(t, FrameSnapshotBegin, snapBegin{Header: []byte("h"), Size: -1}))
	mustWrite(t, c, encodeFrame(t, FrameSnapshotChunk, body))
	bad := sha256.Sum256([]byte("something else"))
	mustWrite(t, c, encodeFrame(t, FrameSnapshotEnd, snapEnd{Size: int64(len(body)), Sum: bad[:]}))

	got := MustReceive(t, hb.snaps, "snapshot")
	if !errors.Is(got.err, ErrChecksum) {
		t.Fatalf("reader error = %v, want ErrChecksum", got.err)
	}
	f, err := ReadFrame(c, 0)
	if err != nil || f.Type != FrameSnapshotAck {
		t.Fatalf("ack: %v %v", f.Type, err)
	}
	var ack snapAck
	if err := msgpack.Unmarshal(f.Payload, &ack); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(ack.err(), ErrChecksum) {
		t.Fatalf("ack carries %v, want ErrChecksum", ack.err())
	}
	waitClosed(t, c)
	if s := b.Stats(); s.SnapshotsFailed != 1 || s.SnapshotsReceived != 0 {
		t.Fatalf("stats %+v", s)
	}
	a.Send(2, []byte("still alive"))
	MustReceive(t, hb.msgs, "message after the bad snapshot")
}

// TestSnapshotTruncated ends a snapshot mid-chunk: the reader fails with
// ErrTruncated and no ack is sent.
func TestSnapshotTruncated(t *testing.T) {
	b, hb := MustTransport(t, 2, nil)
	c := MustRawConn(t, b.Addr().String(), 7, 2)
	mustWrite(t, c, encodeFrame(t, FrameSnapshotBegin, snapBegin{Size: 100}))
	mustWrite(t, c, rawFrame(102, ProtocolVersion, byte(FrameSnapshotChunk), []byte("half")))
	_ = c.(interface{ CloseWrite() error }).CloseWrite()
	if got := MustReceive(t, hb.snaps, "snapshot"); !errors.Is(got.err, ErrTruncated) {
		t.Fatalf("reader error = %v, want ErrTruncated", got.err)
	}
	waitClosed(t, c)
	waitFor(t, "the rejection to be counted", func() bool { return b.Stats().FramesRejected == 1 })
}

// TestSnapshotRefusedByHandler checks that the handler's error comes back to
// the sender as the same grove sentinel.
func TestSnapshotRefusedByHandler(t *testing.T) {
	a, _ := MustTransport(t, 1, nil)
	b, hb := MustTransport(t, 2, nil)
	hb.setRefuse(grove.ErrCorrupt)
	connectAll(a, b)
	err := a.SendSnapshot(t.Context(), 2, nil, bytes.NewReader([]byte("body")))
	if !errors.Is(err, ErrSnapshotFailed) || !errors.Is(err, grove.ErrCorrupt) {
		t.Fatalf("SendSnapshot = %v, want ErrSnapshotFailed and grove.ErrCorrupt", err)
	}
	MustReceive(t, hb.snaps, "snapshot")
}

// TestSnapshotCancel cancels a transfer whose body never ends: the sender
// returns ctx's error and the receiver's reader fails.
func TestSnapshotCancel(t *testing.T) {
	a, _ := MustTransport(t, 1, func(c *Config) { c.SnapshotChunkSize = 4 })
	b, hb := MustTransport(t, 2, nil)
	connectAll(a, b)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- a.SendSnapshot(ctx, 2, nil, endless{}) }()
	waitFor(t, "the first chunk to arrive", func() bool { return b.Stats().SnapshotBytesReceived >= 4 })
	cancel()
	err := MustReceive(t, errc, "SendSnapshot to return")
	if !errors.Is(err, ErrSnapshotFailed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("SendSnapshot = %v, want ErrSnapshotFailed and context.Canceled", err)
	}
	if got := MustReceive(t, hb.snaps, "snapshot"); !errors.Is(got.err, ErrTruncated) {
		t.Fatalf("reader error = %v, want ErrTruncated", got.err)
	}
}

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) { return copy(p, "grove"), nil }

func TestSnapshotUnknownPeer(t *testing.T) {
	a, _ := MustTransport(t, 1, nil)
	err := a.SendSnapshot(t.Context(), 5, nil, bytes.NewReader(nil))
	if !errors.Is(err, ErrSnapshotFailed) || !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("SendSnapshot = %v", err)
	}
}

// TestAckCodes checks that every wire error survives an ack round trip.
func TestAckCodes(t *testing.T) {
	for _, want := range append(wireErrors[1:], grove.ErrCorrupt, grove.ErrStopped) {
		b, err := msgpack.Marshal(ackFor(want))
		if err != nil {
			t.Fatal(err)
		}
		var ack snapAck
		if err := msgpack.Unmarshal(b, &ack); err != nil {
			t.Fatal(err)
		}
		if got := ack.err(); !errors.Is(got, want) {
			t.Fatalf("%v came back as %v", want, got)
		}
	}
	if ackFor(nil).err() != nil {
		t.Fatal("success came back as an error")
	}
}
