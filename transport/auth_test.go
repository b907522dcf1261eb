package transport

import (
	"bytes"
	"errors"
	"testing"
)

var (
	testKey  = bytes.Repeat([]byte("k"), minClusterKey)
	otherKey = bytes.Repeat([]byte("o"), minClusterKey)
)

// withKey sets a cluster key.
func withKey(key []byte) func(*Config) {
	return func(c *Config) { c.ClusterKey = key }
}

// TestClusterKeyDelivers checks that two nodes with the same key talk, and
// that the handler is told the sender's authenticated ID.
func TestClusterKeyDelivers(t *testing.T) {
	a, _ := MustTransport(t, 1, withKey(testKey))
	b, hb := MustTransport(t, 2, withKey(testKey))
	connectAll(a, b)
	a.Send(2, []byte("hi"))
	if m := MustReceive(t, hb.msgs, "a message"); string(m) != "hi" {
		t.Fatalf("got %q", m)
	}
	if got := hb.lastFrom.Load(); got != 1 {
		t.Fatalf("handler told sender %d, want 1", got)
	}
	if s := b.Stats(); s.AuthFailures != 0 || s.HandshakeFailures != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestClusterKeyRefuses checks every mismatch: another key, a key on one
// side only. No message is delivered, and the end that finds the mismatch
// counts it (the other sees its connection closed).
func TestClusterKeyRefuses(t *testing.T) {
	tests := []struct {
		name     string
		da, db   []byte // keys of the dialler and the acceptor
		acceptor bool   // the acceptor finds the mismatch (else the dialler)
	}{
		{"different keys", testKey, otherKey, false},
		{"dialler has no key", nil, testKey, true},
		{"acceptor has no key", testKey, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := MustTransport(t, 1, withKey(tt.da))
			b, hb := MustTransport(t, 2, withKey(tt.db))
			a.AddPeer(2, b.Addr().String())
			a.Send(2, []byte("hi"))
			finder := a
			if tt.acceptor {
				finder = b
			}
			waitFor(t, "the refusal", func() bool { return finder.Stats().AuthFailures > 0 })
			if n := len(hb.msgs); n != 0 {
				t.Fatalf("%d messages delivered", n)
			}
		})
	}
}

// TestClusterKeyStranger plays an outsider on the acceptor's port: a hello
// with a challenge but a forged proof, and a hello that skips the proof and
// sends a message. Neither is delivered.
func TestClusterKeyStranger(t *testing.T) {
	b, hb := MustTransport(t, 2, withKey(testKey))
	for _, proof := range [][]byte{bytes.Repeat([]byte{1}, 32), nil} {
		c := MustRawConn(t, b.Addr().String(), 0, 0)
		mustWrite(t, c, encodeFrame(t, FrameHello, hello{From: 1, To: 2, Version: ProtocolVersion, Nonce: newNonce()}))
		f, err := ReadFrame(c, 0)
		if err != nil || f.Type != FrameHello {
			t.Fatalf("hello reply: %v, %v", f.Type, err)
		}
		if proof != nil {
			mustWrite(t, c, encodeFrame(t, FrameHello, hello{From: 1, To: 2, Version: ProtocolVersion, Proof: proof}))
		}
		mustWrite(t, c, encodeFrame(t, FrameMessage, []byte("forged")))
		waitClosed(t, c)
	}
	waitFor(t, "two refusals", func() bool { return b.Stats().AuthFailures == 2 })
	if n := len(hb.msgs); n != 0 {
		t.Fatalf("%d forged messages delivered", n)
	}
}

// TestKeyProofBindsEverything checks that a proof changes with the role,
// either raft ID, either nonce and the key.
func TestKeyProofBindsEverything(t *testing.T) {
	nd, na := newNonce(), newNonce()
	base := keyProof(testKey, roleDial, 1, 2, nd, na)
	for name, p := range map[string][]byte{
		"role":     keyProof(testKey, roleAccept, 1, 2, nd, na),
		"dialler":  keyProof(testKey, roleDial, 3, 2, nd, na),
		"acceptor": keyProof(testKey, roleDial, 1, 3, nd, na),
		"swapped":  keyProof(testKey, roleDial, 1, 2, na, nd),
		"key":      keyProof(otherKey, roleDial, 1, 2, nd, na),
	} {
		if bytes.Equal(p, base) {
			t.Errorf("changing the %s leaves the proof unchanged", name)
		}
	}
	if err := checkProof(testKey, base, roleDial, 1, 2, nd, na); err != nil {
		t.Fatal(err)
	}
	if err := checkProof(testKey, nil, roleDial, 1, 2, nd, na); !errors.Is(err, ErrAuth) {
		t.Fatalf("no proof: %v", err)
	}
}

// TestShortClusterKeyRefused checks the key length floor.
func TestShortClusterKeyRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID, cfg.ListenAddr, cfg.ClusterKey = 1, "127.0.0.1:0", []byte("short")
	if _, err := New(cfg); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

// TestPreHandshakeFrameLimit checks that a frame larger than a hello needs
// is refused before the handshake, before its payload is read.
func TestPreHandshakeFrameLimit(t *testing.T) {
	b, _ := MustTransport(t, 2, nil)
	c := MustRawConn(t, b.Addr().String(), 0, 0)
	mustWrite(t, c, rawFrame(handshakeMaxFrame+1, ProtocolVersion, byte(FrameHello), nil))
	waitClosed(t, c)
	waitFor(t, "the rejection to be counted", func() bool { return b.Stats().FramesRejected == 1 })
}

// TestMaxInbound checks that connections beyond MaxInbound are closed at
// once and counted, and that a slot freed is usable again.
func TestMaxInbound(t *testing.T) {
	a, _ := MustTransport(t, 1, nil)
	b, hb := MustTransport(t, 2, func(c *Config) { c.MaxInbound = 2 })
	held := []interface{ Close() error }{MustRawConn(t, b.Addr().String(), 0, 0), MustRawConn(t, b.Addr().String(), 0, 0)}
	waitFor(t, "two tracked connections", func() bool {
		b.mu.RLock()
		defer b.mu.RUnlock()
		return len(b.conns) == 2
	})
	extra := MustRawConn(t, b.Addr().String(), 0, 0)
	waitClosed(t, extra)
	waitFor(t, "the refusal to be counted", func() bool { return b.Stats().ConnsRefused >= 1 })
	for _, c := range held {
		_ = c.Close()
	}
	// b frees a slot only once it has read the close; a dial before that is
	// refused like the extra one, and a send to it is dropped.
	waitFor(t, "the held connections to be released", func() bool {
		b.mu.RLock()
		defer b.mu.RUnlock()
		return len(b.conns) == 0
	})
	connectAll(a, b)
	a.Send(2, []byte("after"))
	if m := MustReceive(t, hb.msgs, "a message once slots are free"); string(m) != "after" {
		t.Fatalf("got %q", m)
	}
}

// TestVerify checks that Verify accepts a node holding the key and refuses
// one without it, or one answering with another raft ID.
func TestVerify(t *testing.T) {
	a, _ := MustTransport(t, 1, withKey(testKey))
	good, hg := MustTransport(t, 2, withKey(testKey))
	stranger, _ := MustTransport(t, 3, nil)
	if err := a.Verify(t.Context(), 2, good.Addr().String()); err != nil {
		t.Fatalf("verify a keyed peer: %v", err)
	}
	if err := a.Verify(t.Context(), 3, stranger.Addr().String()); err == nil {
		t.Fatal("a keyless node was verified")
	}
	if err := a.Verify(t.Context(), 4, good.Addr().String()); !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("verify the wrong ID: %v", err)
	}
	if n := len(hg.msgs); n != 0 {
		t.Fatalf("Verify delivered %d messages", n)
	}
}
