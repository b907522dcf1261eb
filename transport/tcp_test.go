package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"testing"
)

// seqMsg encodes (from, seq) as a message.
func seqMsg(from, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, from), seq)
}

func TestSendReceiveInOrder(t *testing.T) {
	const n = 2000
	a, ha := MustTransport(t, 1, nil)
	b, hb := MustTransport(t, 2, nil)
	c, hc := MustTransport(t, 3, nil)
	trs := []*TCP{a, b, c}
	handlers := map[uint64]*testHandler{1: ha, 2: hb, 3: hc}
	connectAll(trs...)
	for seq := range uint64(n) {
		for _, from := range trs {
			for _, to := range trs {
				if from != to {
					from.Send(to.cfg.ID, seqMsg(from.cfg.ID, seq))
				}
			}
		}
	}
	for id, h := range handlers {
		next := map[uint64]uint64{}
		for range 2 * n {
			m := MustReceive(t, h.msgs, fmt.Sprintf("message at %d", id))
			from, seq := binary.BigEndian.Uint64(m), binary.BigEndian.Uint64(m[8:])
			if seq != next[from] {
				t.Fatalf("node %d: message %d from %d, want %d", id, seq, from, next[from])
			}
			next[from]++
		}
	}
	for _, tr := range trs {
		// The writer counts a batch once its flush returns, which may be
		// after the receiver got it.
		waitFor(t, "sent counters", func() bool { return tr.Stats().MessagesSent == 2*n })
		if s := tr.Stats(); s.MessagesReceived != 2*n || s.MessagesDropped != 0 {
			t.Fatalf("node %d stats %+v", tr.cfg.ID, s)
		}
	}
}

func TestSendUnknownPeerDrops(t *testing.T) {
	a, ha := MustTransport(t, 1, nil)
	a.Send(9, []byte("lost"))
	if id := MustReceive(t, ha.unreachable, "unreachable report"); id != 9 {
		t.Fatalf("reported %d unreachable, want 9", id)
	}
	if s := a.Stats(); s.MessagesDropped != 1 {
		t.Fatalf("dropped %d, want 1", s.MessagesDropped)
	}
}

func TestSendTooLargeDrops(t *testing.T) {
	a, ha := MustTransport(t, 1, func(c *Config) { c.MaxFrameSize = 1024; c.SnapshotChunkSize = 512 })
	b, hb := MustTransport(t, 2, func(c *Config) { c.MaxFrameSize = 1024; c.SnapshotChunkSize = 512 })
	connectAll(a, b)
	a.Send(2, make([]byte, 1023))
	MustReceive(t, ha.unreachable, "unreachable report")
	a.Send(2, make([]byte, 1022))
	if m := MustReceive(t, hb.msgs, "largest message"); len(m) != 1022 {
		t.Fatalf("got %d bytes", len(m))
	}
}

func TestSendFullQueueDrops(t *testing.T) {
	const queue, sends = 8, 1000
	// The peer's kernel completes the TCP handshake, but nobody ever answers
	// the hello: the writer stays stuck with one message in hand.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silent.Close() }()
	a, ha := MustTransport(t, 1, func(c *Config) { c.QueueSize = queue })
	a.AddPeer(2, silent.Addr().String())
	for i := range sends {
		a.Send(2, seqMsg(1, uint64(i))) // must return: the test hangs otherwise
	}
	if s := a.Stats(); s.MessagesDropped < sends-queue-1 {
		t.Fatalf("dropped %d of %d with a queue of %d", s.MessagesDropped, sends, queue)
	}
	if id := MustReceive(t, ha.unreachable, "unreachable report"); id != 2 {
		t.Fatalf("reported %d, want 2", id)
	}
	if err := a.Close(); err != nil { // must not wait for the stuck handshake
		t.Fatal(err)
	}
}

func TestReconnectAfterPeerRestart(t *testing.T) {
	a, _ := MustTransport(t, 1, nil)
	b, hb := MustTransport(t, 2, nil)
	connectAll(a, b)
	a.Send(2, []byte("first"))
	MustReceive(t, hb.msgs, "first message")
	addr := b.Addr().String()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, hb2 := MustTransport(t, 2, func(c *Config) { c.ListenAddr = addr })
	// The writer learns of the broken connection only from a failed write,
	// so keep sending until one arrives.
	sendUntilReceived(t, a, 2, hb2)
	if s := a.Stats(); s.Reconnects < 1 {
		t.Fatalf("stats %+v: no reconnect counted", s)
	}
}

// sendUntilReceived sends numbered messages from a to peer to until one
// arrives at h.
func sendUntilReceived(t *testing.T, a *TCP, to uint64, h *testHandler) {
	t.Helper()
	i := uint64(0)
	waitFor(t, "a message to arrive", func() bool {
		select {
		case <-h.msgs:
			return true
		default:
			if i%20 == 0 {
				a.Send(to, seqMsg(a.cfg.ID, i))
			}
			i++
			return false
		}
	})
}

func TestAddPeerMovesAndRemovePeerForgets(t *testing.T) {
	a, ha := MustTransport(t, 1, nil)
	b, hb := MustTransport(t, 2, nil)
	connectAll(a, b)
	a.Send(2, []byte("to old"))
	MustReceive(t, hb.msgs, "message at the old address")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, hb2 := MustTransport(t, 2, nil)
	a.AddPeer(2, b2.Addr().String())
	sendUntilReceived(t, a, 2, hb2)

	a.RemovePeer(2)
	a.Send(2, []byte("forgotten"))
	if id := MustReceive(t, ha.unreachable, "unreachable report"); id != 2 {
		t.Fatalf("reported %d, want 2", id)
	}
}

func TestWrongPeerRefused(t *testing.T) {
	a, _ := MustTransport(t, 1, nil)
	c, hc := MustTransport(t, 3, nil)
	a.AddPeer(2, c.Addr().String()) // node 3 answers where 2 is expected
	a.Send(2, []byte("misrouted"))
	waitFor(t, "handshake failures on both sides", func() bool {
		return a.Stats().HandshakeFailures > 0 && c.Stats().HandshakeFailures > 0
	})
	if len(hc.msgs) != 0 {
		t.Fatal("a message reached the wrong node")
	}
}

func TestStartAndCloseContract(t *testing.T) {
	a, h := MustTransport(t, 1, nil)
	if err := a.Start(h); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
	for range 2 {
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := a.Start(h); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	a.Send(2, []byte("after close")) // must not panic or block
	a.AddPeer(2, "127.0.0.1:1")
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"zero fields take defaults", func(c *Config) { *c = Config{ID: 1, ListenAddr: "127.0.0.1:0"} }, true},
		{"no id", func(c *Config) { c.ID = 0 }, false},
		{"no address", func(c *Config) { c.ListenAddr = "" }, false},
		{"chunk over frame", func(c *Config) { c.SnapshotChunkSize = c.MaxFrameSize }, false},
		{"frame over 1 GiB", func(c *Config) { c.MaxFrameSize = 2 << 30 }, false},
		{"negative queue", func(c *Config) { c.QueueSize = -1 }, false},
		{"inverted backoff", func(c *Config) { c.BackoffMin = 2 * c.BackoffMax }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ID, cfg.ListenAddr = 1, "127.0.0.1:0"
			tt.edit(&cfg)
			tr, err := New(cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New = %v, want ok=%v", err, tt.ok)
			}
			if tr != nil {
				_ = tr.Close()
			}
		})
	}
}
