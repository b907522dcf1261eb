package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made up for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of cert
}

// MustCA creates a CA whose certificate is written to dir/name.pem.
func MustCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".pem")
	mustWritePEM(t, file, "CERTIFICATE", der)
	return &testCA{cert: cert, key: key, file: file}
}

// MustNodeCert issues a server+client certificate for 127.0.0.1 and
// returns the paths of its certificate and key.
func (ca *testCA) MustNodeCert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key := mustKey(t)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	mustWritePEM(t, certFile, "CERTIFICATE", der)
	mustWritePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func mustWritePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

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
	ca := MustCA(t, dir, "ca")
	c1, k1 := ca.MustNodeCert(t, dir, "node1")
	c2, k2 := ca.MustNodeCert(t, dir, "node2")
	a, ha := MustTLSTransport(t, 1, ca.file, c1, k1, nil)
	b, hb := MustTLSTransport(t, 2, ca.file, c2, k2, nil)
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
	ca := MustCA(t, dir, "ca")
	rogue := MustCA(t, dir, "rogue")
	c1, k1 := ca.MustNodeCert(t, dir, "node1")
	c3, k3 := rogue.MustNodeCert(t, dir, "node3")
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, ha := MustTLSTransport(t, 1, ca.file, c1, k1, log)
	c, _ := MustTLSTransport(t, 3, ca.file, c3, k3, nil)
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
	ca := MustCA(t, dir, "ca")
	cert, key := ca.MustNodeCert(t, dir, "node")
	if _, err := LoadTLS(filepath.Join(dir, "missing.pem"), cert, key); err == nil {
		t.Fatal("LoadTLS accepted a missing CA file")
	}
	if _, err := LoadTLS(key, cert, key); err == nil {
		t.Fatal("LoadTLS accepted a CA file without certificates")
	}
	if _, err := LoadTLS(ca.file, cert, ca.file); err == nil {
		t.Fatal("LoadTLS accepted a certificate as key")
	}
}
