package transport

import (
	"testing"
	"time"
)

// TestMalformedInputClosesOnlyThatConnection feeds raw connections invalid
// input: each is closed and counted, and the transport goes on serving a
// well-behaved peer.
func TestMalformedInputClosesOnlyThatConnection(t *testing.T) {
	tests := []struct {
		name  string
		hello bool // run the hello exchange first
		input []byte
	}{
		{"length over MaxFrameSize", true, rawFrame(DefaultMaxFrameSize+1, ProtocolVersion, byte(FrameMessage), nil)},
		{"bad version", true, rawFrame(5, 7, byte(FrameMessage), []byte("abc"))},
		{"unknown frame type", true, rawFrame(5, ProtocolVersion, 42, []byte("abc"))},
		{"truncated frame", true, rawFrame(100, ProtocolVersion, byte(FrameMessage), []byte("only ten b"))},
		{"garbage before hello", false, []byte("GET / HTTP/1.1\r\nHost: grove\r\n\r\n")},
		{"message before hello", false, rawFrame(5, ProtocolVersion, byte(FrameMessage), []byte("abc"))},
		{"undecodable hello", false, rawFrame(5, ProtocolVersion, byte(FrameHello), []byte{0xc1, 0xc1, 0xc1})},
		{"chunk outside a snapshot", true, rawFrame(5, ProtocolVersion, byte(FrameSnapshotChunk), []byte("abc"))},
	}
	a, _ := MustTransport(t, 1, nil)
	b, hb := MustTransport(t, 2, nil)
	connectAll(a, b)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := uint64(0)
			if tt.hello {
				from = 7
			}
			c := MustRawConn(t, b.Addr().String(), from, 2)
			mustWrite(t, c, tt.input)
			if tt.name == "truncated frame" {
				_ = c.(interface{ CloseWrite() error }).CloseWrite()
			}
			waitClosed(t, c)
			waitFor(t, "the rejection to be counted", func() bool { return b.Stats().FramesRejected == uint64(i+1) })
			a.Send(2, []byte(tt.name))
			if m := MustReceive(t, hb.msgs, "message from a healthy peer"); string(m) != tt.name {
				t.Fatalf("got %q", m)
			}
		})
	}
	if n := len(hb.msgs); n != 0 {
		t.Fatalf("%d stray messages delivered", n)
	}
}

// TestHelloTimeout checks that a connection that never says hello is cut
// after HandshakeTimeout.
func TestHelloTimeout(t *testing.T) {
	b, _ := MustTransport(t, 2, func(c *Config) { c.HandshakeTimeout = 50 * time.Millisecond })
	c := MustRawConn(t, b.Addr().String(), 0, 0)
	waitClosed(t, c)
	waitFor(t, "the handshake failure to be counted", func() bool { return b.Stats().HandshakeFailures == 1 })
}
