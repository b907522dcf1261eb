package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// TestClientPortSurvivesEMFILE runs a server with its descriptor limit
// lowered (prlimit --nofile, as ulimit -n would) and floods its ZooKeeper
// port with idle connections until accept fails with EMFILE. Once the flood
// goes away the port serves a new client again. Before, the first EMFILE
// ended the accept loop for good: the socket kept listening, clients
// connected and hung.
func TestClientPortSurvivesEMFILE(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; run without -short")
	}
	prlimit := requireTool(t, []string{"/usr/bin/prlimit", "prlimit"}, "--version")
	grove := buildGrove(t)
	c := &procCluster{t: t, bin: prlimit, base: t.TempDir(), procs: map[string]*proc{}}
	p := &proc{name: "e1", gossip: freePort(t), peer: freePort(t), httpAdr: freePort(t), client: freePort(t), zk: freePort(t)}
	p.dir = filepath.Join(c.base, p.name)
	p.args = []string{"--nofile=160:160", "--", grove, "server", "--name", p.name, "--data-dir", p.dir,
		"--gossip-addr", p.gossip, "--peer-addr", p.peer, "--http-addr", p.httpAdr, "--client-addr", p.client,
		"--zk-addr", p.zk, "--bootstrap-expect", "1", "--max-client-conns-per-ip", "0", "--log-level", "info"}
	c.procs[p.name] = p
	c.start(p)
	t.Cleanup(func() { c.kill(p) })
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(p) != nil })

	var flood []net.Conn
	defer func() {
		for _, f := range flood {
			_ = f.Close()
		}
	}()
	logged := func() bool {
		b, _ := os.ReadFile(filepath.Join(c.base, p.name+".log"))
		return strings.Contains(string(b), "too many open files")
	}
	for i := 0; i < 400 && !logged(); i++ {
		f, err := net.DialTimeout("tcp", p.zk, 5*time.Second)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		flood = append(flood, f)
		if i%20 == 19 {
			time.Sleep(50 * time.Millisecond) // let the server accept what is queued
		}
	}
	c.waitFor("the server to run out of descriptors", 30*time.Second, logged)
	for _, f := range flood {
		_ = f.Close()
	}
	flood = nil

	conn, events, err := zk.Connect([]string{p.zk}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitConnected(t, events)
	if _, err := conn.Create("/after-emfile", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create after the descriptor storm: %v", err)
	}
	select {
	case <-p.done:
		t.Fatal("the server exited")
	default:
	}
}

// TestOversizedPreHandshakeFramesKeepMemoryFlat opens 300 connections, 100
// to each of the ZooKeeper, native and peer ports of a server, each announcing
// an 8 MiB frame before any handshake and sending its first bytes, and
// holds them open. The server refuses such a frame at once, so its
// resident memory stays flat; before, each one was read whole (300 of them
// held 2.4 GB).
func TestOversizedPreHandshakeFramesKeepMemoryFlat(t *testing.T) {
	c := newProcCluster(t)
	p := c.add("m1", "--bootstrap-expect", "1", "--max-client-conns-per-ip", "0")
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(p) != nil })
	before := rssBytes(t, p)
	const each = 100
	header := func(frameType byte) []byte {
		b := []byte{0x00, 0x80, 0x00, 0x00} // 8 MiB, big-endian
		return append(b, 1, frameType, 0x42, 0x42)
	}
	var held []net.Conn
	defer func() {
		for _, h := range held {
			_ = h.Close()
		}
	}()
	for _, port := range []struct {
		addr  string
		first []byte
	}{
		{p.zk, header(0)},     // jute: length, then whatever
		{p.client, header(7)}, // a native client frame
		{p.peer, header(1)},   // a peer hello
	} {
		for range each {
			conn, err := net.DialTimeout("tcp", port.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, conn)
			_, _ = conn.Write(port.first)
			_, _ = conn.Write(make([]byte, 64<<10)) // part of the body
		}
	}
	// Each connection is refused as soon as its header is read: wait until
	// the server has closed them all.
	for _, h := range held {
		_ = h.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.Copy(io.Discard, h); err != nil && !isConnReset(err) {
			t.Fatalf("the server did not close an oversized connection: %v", err)
		}
	}
	after := rssBytes(t, p)
	t.Logf("resident memory %d MB before, %d MB after %d oversized frames", before>>20, after>>20, 3*each)
	if after > before+64<<20 {
		t.Fatalf("resident memory grew from %d MB to %d MB", before>>20, after>>20)
	}
}

// rssBytes reads a process's resident set size from /proc.
func rssBytes(t *testing.T, p *proc) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// isConnReset reports a connection the peer reset (closing with unread
// data pending does that).
func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

// TestStalledBackupDownloadIsCut starts a backup download from a server
// process and stops reading it: once the client has taken nothing for
// --backup-stall-timeout the server cuts the stream (the download ends
// short, with an error), so its read transaction does not pin the data
// file; a backup right after, read to the end, is whole.
func TestStalledBackupDownloadIsCut(t *testing.T) {
	c := newProcCluster(t)
	p := c.add("b1", "--bootstrap-expect", "1", "--backup-stall-timeout", "300ms")
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(p) != nil })
	big := strings.Repeat("v", 500<<10)
	for i := range 40 { // 20 MB: far more than the socket buffers hold
		if err := put(p.httpAdr, "/big-"+strconv.Itoa(i), big); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.httpAdr+"/v1/backup", nil)
	resp, err := hc.Transport.RoundTrip(req) // with the token; no client timeout
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("backup: %s", resp.Status)
	}
	c.waitFor("the server to cut the stalled download", 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(c.base, p.name+".log"))
		return strings.Contains(string(b), "backup failed")
	})
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil {
		t.Fatalf("the stalled download ended cleanly after %d bytes", n)
	}
	t.Logf("stalled download cut after %d bytes: %v", n, err)
	var out, errs bytes.Buffer
	file := filepath.Join(t.TempDir(), "after.grove")
	if code := run([]string{"backup", "--http", p.httpAdr, "--no-progress", file}, &out, &errs); code != 0 {
		t.Fatalf("a backup after the cut: %d %s", code, errs.String())
	}
}
