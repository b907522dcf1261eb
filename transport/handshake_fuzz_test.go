package transport

import (
	"io"

	"github.com/vmihailenco/msgpack/v5"

	"net"
	"testing"
	"time"
)

// FuzzPeerHandshake feeds arbitrary bytes to the accepting side of the
// peer handshake of a transport with a cluster key: it never panics, never
// reads past the pre-handshake frame limit, and never accepts, since no
// input can carry a valid proof without the key.
func FuzzPeerHandshake(f *testing.F) {
	frameOf := func(h hello) []byte {
		b, err := AppendFrame(nil, FrameHello, mustMsgpack(f, h))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	nonce := make([]byte, nonceSize)
	f.Add(frameOf(hello{From: 1, To: 2, Version: ProtocolVersion, Nonce: nonce}))
	f.Add(append(frameOf(hello{From: 1, To: 2, Version: ProtocolVersion, Nonce: nonce}),
		frameOf(hello{From: 1, To: 2, Version: ProtocolVersion, Proof: make([]byte, 32)})...))
	f.Add(frameOf(hello{From: 1, To: 3, Version: ProtocolVersion}))
	f.Add(rawFrame(handshakeMaxFrame+1, ProtocolVersion, byte(FrameHello), nil))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	cfg := DefaultConfig()
	cfg.ID, cfg.ListenAddr, cfg.ClusterKey = 2, "127.0.0.1:0", testKey
	cfg.HandshakeTimeout = 200 * time.Millisecond
	tr, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = tr.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = ln.Close() })
	f.Fuzz(func(t *testing.T, input []byte) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = client.Close() }()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = io.Copy(io.Discard, client) }() // take the answers
		go func() {
			_, _ = client.Write(input)
			// The input ends here: the server reads EOF after it, and can
			// still answer (a half close).
			_ = client.(*net.TCPConn).CloseWrite()
		}()
		c, from, err := tr.handshakeIn(server)
		_ = server.Close()
		if err == nil {
			c.close()
			t.Fatalf("a handshake without the key was accepted (peer %d)", from)
		}
	})
}

func mustMsgpack(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
