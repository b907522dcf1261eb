package transport

import (
	"context"
	"io"
	"testing"
)

// windowHandler releases one slot of the sender's window per message, so
// the benchmark measures throughput rather than drops.
type windowHandler struct {
	window chan struct{}
	done   chan struct{}
	left   int
}

func (h *windowHandler) Receive(uint64, []byte) {
	<-h.window // never blocks: every message took a slot first
	h.left--   // one connection, so one reader goroutine calls Receive
	if h.left == 0 {
		close(h.done)
	}
}

func (h *windowHandler) ReportUnreachable(uint64) {}

func (h *windowHandler) ReceiveSnapshot(context.Context, uint64, []byte, io.Reader) error { return nil }

func BenchmarkSendReceive(b *testing.B) {
	const size = 256
	a, _ := MustTransport(b, 1, func(c *Config) { c.Logger = nil })
	cfg := DefaultConfig()
	cfg.ID, cfg.ListenAddr = 2, "127.0.0.1:0"
	r, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	h := &windowHandler{window: make(chan struct{}, DefaultQueueSize/2), done: make(chan struct{}), left: b.N}
	if err := r.Start(h); err != nil {
		b.Fatal(err)
	}
	a.AddPeer(2, r.Addr().String())
	msg := make([]byte, size)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.window <- struct{}{}
		a.Send(2, msg)
	}
	<-h.done
	b.StopTimer()
	if d := a.Stats().MessagesDropped; d != 0 {
		b.Fatalf("%d messages dropped", d)
	}
}
