package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// hangGuard bounds every wait of a test so a bug fails instead of hanging;
// no test asserts on how long anything takes.
const hangGuard = 15 * time.Second

// snapResult is what the test handler saw of one snapshot.
type snapResult struct {
	header []byte
	sum    [32]byte
	n      int64
	err    error // the body reader's error, nil after a clean EOF
}

// testHandler collects what a transport delivers. Receive never blocks: a
// message beyond the channel's capacity is counted as overflow.
type testHandler struct {
	msgs        chan []byte
	unreachable chan uint64
	snaps       chan snapResult
	overflow    atomic.Uint64
	lastFrom    atomic.Uint64 // the authenticated sender of the latest message

	// mu guards the fields below it.
	mu sync.Mutex
	// refuse, if set, is returned by ReceiveSnapshot after reading the body.
	refuse error
}

// setRefuse makes ReceiveSnapshot fail with err after reading the body.
func (h *testHandler) setRefuse(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refuse = err
}

func newTestHandler() *testHandler {
	return &testHandler{
		msgs:        make(chan []byte, 1<<14),
		unreachable: make(chan uint64, 1<<14),
		snaps:       make(chan snapResult, 16),
	}
}

func (h *testHandler) Receive(from uint64, data []byte) {
	h.lastFrom.Store(from)
	select {
	case h.msgs <- data:
	default:
		h.overflow.Add(1)
	}
}

func (h *testHandler) ReportUnreachable(id uint64) {
	select {
	case h.unreachable <- id:
	default:
	}
}

func (h *testHandler) ReceiveSnapshot(_ context.Context, _ uint64, header []byte, body io.Reader) error {
	sum := sha256.New()
	n, err := io.Copy(sum, body)
	r := snapResult{header: header, n: n, err: err}
	copy(r.sum[:], sum.Sum(nil))
	h.snaps <- r
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refuse
}

// MustTransport starts a transport with id on 127.0.0.1:0, closed at the
// end of the test. edit, if not nil, adjusts the config first.
func MustTransport(tb testing.TB, id uint64, edit func(*Config)) (*TCP, *testHandler) {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.ID = id
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Logger = testLogger(tb)
	if edit != nil {
		edit(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		tb.Fatalf("New(%d): %v", id, err)
	}
	h := newTestHandler()
	if err := tr.Start(h); err != nil {
		tb.Fatalf("Start(%d): %v", id, err)
	}
	tb.Cleanup(func() { _ = tr.Close() })
	return tr, h
}

// connectAll makes every transport a peer of every other.
func connectAll(trs ...*TCP) {
	for _, a := range trs {
		for _, b := range trs {
			if a != b {
				a.AddPeer(b.cfg.ID, b.Addr().String())
			}
		}
	}
}

// MustReceive returns the next message from ch.
func MustReceive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// testLogger writes to the test log at debug level.
func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// syncBuffer is a bytes.Buffer safe for concurrent writers, to capture logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// MustRawConn dials addr as a bare TCP client, closed at the end of the
// test; if from is not 0 it runs the hello exchange as peer from talking
// to peer to.
func MustRawConn(t *testing.T, addr string, from, to uint64) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.SetDeadline(time.Now().Add(hangGuard)); err != nil {
		t.Fatal(err)
	}
	if from == 0 {
		return c
	}
	mustWrite(t, c, encodeFrame(t, FrameHello, hello{From: from, To: to, Version: ProtocolVersion}))
	f, err := ReadFrame(c, 0)
	if err != nil || f.Type != FrameHello {
		t.Fatalf("hello reply: %v, %v", f.Type, err)
	}
	return c
}

// encodeFrame encodes a frame whose payload is v: raw bytes, or msgpack.
func encodeFrame(t *testing.T, typ FrameType, v any) []byte {
	t.Helper()
	payload, ok := v.([]byte)
	if !ok {
		var err error
		if payload, err = msgpack.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	b, err := AppendFrame(nil, typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// waitClosed reads c until the server closes it.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := io.Copy(io.Discard, c); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("server did not close the connection: %v", err)
		}
	}
}
