package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCA creates a CA and one node certificate (IP SAN 127.0.0.1, usable
// as server and client) in dir and returns the file paths.
func writeCA(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name + " node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(file, typ string, b []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write(name+"-ca.pem", "CERTIFICATE", caDER), write(name+"-cert.pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
}

// TestPeerTLSCluster forms a three-process cluster over mutual TLS, and
// shows a node with a certificate from another CA cannot take part: the
// others log the unknown authority and it never joins the raft traffic.
func TestPeerTLSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; run without -short")
	}
	dir := t.TempDir()
	ca, cert, key := writeCA(t, dir, "good")
	_, badCert, badKey := writeCA(t, dir, "evil")
	c := newProcCluster(t)
	tlsFlags := []string{"--peer-tls-ca", ca, "--peer-tls-cert", cert, "--peer-tls-key", key}
	var all []*proc
	for i := 1; i <= 3; i++ {
		all = append(all, c.add(fmt.Sprintf("n%d", i), append([]string{"--bootstrap-expect", "3"}, tlsFlags...)...))
	}
	c.waitFor("a leader over TLS", 30*time.Second, func() bool { return c.leader(all...) != nil })
	if err := put(all[1].httpAdr, "/over-tls", "x"); err != nil {
		t.Fatalf("write over TLS: %v", err)
	}
	c.waitFor("convergence over TLS", 30*time.Second, func() bool { return c.converged(all...) })

	// An intruder with another CA's certificate joins gossip (no gossip
	// key here) and is added as a learner, but can never receive raft
	// traffic: it never catches up and is never promoted.
	evil := c.add("evil", "--peer-tls-ca", ca, "--peer-tls-cert", badCert, "--peer-tls-key", badKey)
	c.waitFor("the leader to log the refused certificate", 30*time.Second, func() bool {
		for _, p := range all {
			b, _ := os.ReadFile(filepath.Join(c.base, p.name+".log"))
			if strings.Contains(string(b), "unknown authority") || strings.Contains(string(b), "bad certificate") {
				return true
			}
		}
		return false
	})
	st, err := status(all[0].httpAdr)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range st.Voters {
		if v.Name == "evil" {
			t.Fatal("a node with a foreign certificate became a voter")
		}
	}
	d, err := digest(evil.httpAdr)
	if err == nil {
		good, _ := digest(all[0].httpAdr)
		if d == good {
			t.Fatal("a node with a foreign certificate received the cluster's state")
		}
	}
}
