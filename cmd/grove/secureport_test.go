package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/grovekit/grove/internal/testutil"
)

// TestSecureClientPorts runs one server whose client ports require TLS
// with client certificates (--client-tls-*) and that also serves the
// ZooKeeper protocol over TLS (--zk-secure-addr, ZooKeeper's
// secureClientPort), and drives it as a team leaving ZooKeeper would:
// kazoo with use_ssl writes nodes owned by its certificate's x509 identity
// and by a digest user; go-zookeeper through a TLS dialer reads them with
// the owner's certificate and is refused with another; the grove CLI, with
// --tls-* and --auth, reads the digest-owned node and is refused without
// --auth.
func TestSecureClientPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; run without -short")
	}
	python := requireTool(t, []string{"/usr/bin/python3", "python3"}, "-c", "import kazoo")
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "clients-ca")
	srvCert, srvKey := ca.MustNodeCert(t, dir, "server")
	aliceCert, aliceKey := ca.MustNodeCert(t, dir, "alice-client")
	malCert, malKey := ca.MustNodeCert(t, dir, "mallory-client")
	c := newProcCluster(t)
	secure := freePort(t)
	n := c.add("s1", "--bootstrap-expect", "1", "--client-tls-cert", srvCert, "--client-tls-key", srvKey,
		"--client-tls-ca", ca.File, "--zk-secure-addr", secure)
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(n) != nil })
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "testdata/kazoo_tls.py", secure, ca.File, aliceCert, aliceKey, "CN=alice-client").CombinedOutput()
	t.Logf("kazoo:\n%s", out)
	if err != nil || !bytes.HasSuffix(bytes.TrimSpace(out), []byte("OK")) {
		t.Fatalf("kazoo over TLS failed: %v", err)
	}

	read := func(cert, key, path string) ([]byte, error) {
		t.Helper()
		conn, events, err := zk.Connect([]string{secure}, 10*time.Second, zk.WithDialer(tlsDialer(t, ca.File, cert, key)), zk.WithLogInfo(false))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		waitConnected(t, events)
		data, _, err := conn.Get(path)
		return data, err
	}
	if data, err := read(aliceCert, aliceKey, "/tls/x509-owned"); err != nil || string(data) != "for my certificate" {
		t.Fatalf("the owner's certificate: %q, %v", data, err)
	}
	if _, err := read(malCert, malKey, "/tls/x509-owned"); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("another certificate: %v, want NoAuth", err)
	}
	if data, err := read(malCert, malKey, "/tls"); err != nil || string(data) != "over tls" {
		t.Fatalf("a world-readable node over TLS: %q, %v", data, err)
	}
	plain, err := net.DialTimeout("tcp", secure, 5*time.Second)
	if err == nil {
		_ = plain.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = plain.Write([]byte("ruok"))
		b, _ := io.ReadAll(plain)
		_ = plain.Close()
		if string(b) == "imok" {
			t.Fatal("the secure port answered in plain text")
		}
	}

	tlsArgs := []string{"--servers", n.client, "--tls-ca", ca.File, "--tls-cert", aliceCert, "--tls-key", aliceKey}
	var stdout, stderr bytes.Buffer
	if code := run(append(tlsArgs, "--auth", "digest:alice:pw", "get", "/tls/digest-owned"), &stdout, &stderr); code != 0 || strings.TrimSpace(stdout.String()) != "for alice" {
		t.Fatalf("grove --auth get: exit %d, %q, %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(append(tlsArgs, "get", "/tls/digest-owned"), &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "not authorized") {
		t.Fatalf("grove get without --auth: exit %d, %q, %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"--servers", n.client, "--timeout", "2s", "get", "/tls"}, &stdout, &stderr); code == 0 {
		t.Fatalf("grove without TLS read from a TLS port: %q", stdout.String())
	}
}

// tlsDialer is a go-zookeeper dialer that speaks TLS with a client
// certificate.
func tlsDialer(t *testing.T, caFile, certFile, keyFile string) zk.Dialer {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, network, address, cfg)
	}
}

// waitConnected waits for a go-zookeeper session.
func waitConnected(t *testing.T, events <-chan zk.Event) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return
			}
		case <-deadline:
			t.Fatal("no session")
		}
	}
}

// TestHTTPSWithToken runs a server whose HTTP port speaks HTTPS and wants a
// token: the CLI's status, members and backup work with --http
// https://..., --http-tls-ca and --token-file, and are refused without the
// token; plain HTTP to the port gets nothing.
func TestHTTPSWithToken(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; run without -short")
	}
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "http-ca")
	cert, key := ca.MustNodeCert(t, dir, "http-server")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("an-http-token-of-some-length\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newProcCluster(t)
	n := c.add("h1", "--bootstrap-expect", "1", "--http-tls-cert", cert, "--http-tls-key", key, "--token-file", token)
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	base := "https://" + n.httpAdr
	cli := func(args ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		return stdout.String(), stderr.String(), code
	}
	c.waitFor("the node over HTTPS", 30*time.Second, func() bool {
		out, _, code := cli("status", "--http", base, "--http-tls-ca", ca.File, "--token-file", token)
		return code == 0 && strings.Contains(out, "leader") && !strings.Contains(out, "applied 0,")
	})
	if out, errs, code := cli("members", "--http", base, "--http-tls-ca", ca.File, "--token-file", token); code != 0 || !strings.Contains(out, "h1") {
		t.Fatalf("members over HTTPS: %d %q %q", code, out, errs)
	}
	file := filepath.Join(dir, "b.grove")
	if _, errs, code := cli("backup", "--http", base, "--http-tls-ca", ca.File, "--token-file", token, "--no-progress", file); code != 0 {
		t.Fatalf("backup over HTTPS: %d %q", code, errs)
	}
	if _, errs, code := cli("status", "--http", base, "--http-tls-ca", ca.File); code == 0 || !strings.Contains(errs, "401") {
		t.Fatalf("status without the token: %d %q", code, errs)
	}
	if _, errs, code := cli("status", "--http", n.httpAdr, "--token-file", token); code == 0 {
		t.Fatalf("plain HTTP to the HTTPS port answered: %q", errs)
	}
}
