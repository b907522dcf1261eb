package transport

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grovekit/grove/internal/testutil"
)

// MustTLSTransport starts transport id with LoadTLS(caFile, its cert).
func MustTLSTransport(t *testing.T, id uint64, caFile, certFile, keyFile string, log *slog.Logger) (*TCP, *testHandler) {
	t.Helper()
	cfg, err := LoadTLS(caFile, certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadTLS: %v", err)
	}
	return MustTransport(t, id, func(c *Config) {
		c.TLS = cfg
		if log != nil {
			c.Logger = log
		}
	})
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "ca")
	c1, k1 := ca.MustNodeCert(t, dir, "node1")
	c2, k2 := ca.MustNodeCert(t, dir, "node2")
	a, ha := MustTLSTransport(t, 1, ca.File, c1, k1, nil)
	b, hb := MustTLSTransport(t, 2, ca.File, c2, k2, nil)
	connectAll(a, b)
	a.Send(2, []byte("ping"))
	if m := MustReceive(t, hb.msgs, "message over TLS"); string(m) != "ping" {
		t.Fatalf("got %q", m)
	}
	b.Send(1, []byte("pong"))
	MustReceive(t, ha.msgs, "reply over TLS")
	if err := a.SendSnapshot(t.Context(), 2, []byte("h"), strings.NewReader("snapshot over TLS")); err != nil {
		t.Fatalf("SendSnapshot over TLS: %v", err)
	}
	if got := MustReceive(t, hb.snaps, "snapshot"); got.err != nil || got.n != int64(len("snapshot over TLS")) {
		t.Fatalf("got %+v", got)
	}
}

// TestTLSForeignCARefused gives node 3 a certificate from another CA (it
// still trusts the cluster CA, so only the server's check can refuse it):
// its messages never arrive and the refusal is logged and counted.
func TestTLSForeignCARefused(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "ca")
	rogue := testutil.MustCA(t, dir, "rogue")
	c1, k1 := ca.MustNodeCert(t, dir, "node1")
	c3, k3 := rogue.MustNodeCert(t, dir, "node3")
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, ha := MustTLSTransport(t, 1, ca.File, c1, k1, log)
	c, _ := MustTLSTransport(t, 3, ca.File, c3, k3, nil)
	c.AddPeer(1, a.Addr().String())
	c.Send(1, []byte("intruder"))
	waitFor(t, "handshake failures on both sides", func() bool {
		return a.Stats().HandshakeFailures > 0 && c.Stats().HandshakeFailures > 0
	})
	if n := len(ha.msgs); n != 0 {
		t.Fatalf("%d messages from a node with a foreign certificate", n)
	}
	if s := a.Stats(); s.MessagesReceived != 0 {
		t.Fatalf("stats %+v", s)
	}
	out := logs.String()
	if !strings.Contains(out, "certificate") || !strings.Contains(out, "authority") {
		t.Fatalf("log does not explain the refusal:\n%s", out)
	}
}

func TestLoadTLSErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "ca")
	cert, key := ca.MustNodeCert(t, dir, "node")
	if _, err := LoadTLS(filepath.Join(dir, "missing.pem"), cert, key); err == nil {
		t.Fatal("LoadTLS accepted a missing CA file")
	}
	if _, err := LoadTLS(key, cert, key); err == nil {
		t.Fatal("LoadTLS accepted a CA file without certificates")
	}
	if _, err := LoadTLS(ca.File, cert, ca.File); err == nil {
		t.Fatal("LoadTLS accepted a certificate as key")
	}
}

// TestVerifyPeerBindsCertificates gives both ends a VerifyPeer that accepts
// a certificate only for the raft ID its common name spells: node 1 (cert
// "node1") talks to node 2 (cert "node2"); node 3, holding a valid
// certificate of the same CA but not named "node3", cannot speak as 3:
// node 2 refuses it before answering its hello.
func TestVerifyPeerBindsCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "ca")
	bind := func(id uint64, cert *x509.Certificate) error {
		if want := fmt.Sprintf("node%d", id); cert.Subject.CommonName != want {
			return fmt.Errorf("certificate of %q for raft ID %d", cert.Subject.CommonName, id)
		}
		return nil
	}
	start := func(id uint64, certName string) (*TCP, *testHandler) {
		c, k := ca.MustNodeCert(t, dir, certName)
		cfg, err := LoadTLS(ca.File, c, k)
		if err != nil {
			t.Fatal(err)
		}
		return MustTransport(t, id, func(c *Config) { c.TLS, c.VerifyPeer = cfg, bind })
	}
	a, _ := start(1, "node1")
	b, hb := start(2, "node2")
	impostor, _ := start(3, "node1-copy")
	connectAll(a, b)
	a.Send(2, []byte("bound"))
	if m := MustReceive(t, hb.msgs, "a message between bound certificates"); string(m) != "bound" {
		t.Fatalf("got %q", m)
	}
	impostor.AddPeer(2, b.Addr().String())
	impostor.Send(2, []byte("forged"))
	waitFor(t, "node 2 to refuse the impostor", func() bool { return b.Stats().AuthFailures > 0 })
	for len(hb.msgs) > 0 {
		if m := <-hb.msgs; string(m) == "forged" {
			t.Fatal("the impostor's message was delivered")
		}
	}
}
