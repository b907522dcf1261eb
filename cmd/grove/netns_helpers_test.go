//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsPrefix starts the name of every network namespace these tests
// create; the test process's pid follows it.
const netnsPrefix = "grovetest-"

// netnsRunDir is where `ip netns add` binds named namespaces.
const netnsRunDir = "/var/run/netns"

// requireNetns skips the test unless it runs as root with an `ip` that can
// create network namespaces, and returns the path of `ip`.
func requireNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs iproute2's ip for network namespaces: ", err)
	}
	probe := fmt.Sprintf("%s%d-probe", netnsPrefix, os.Getpid())
	if out, err := exec.Command(ipBin, "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("cannot create network namespaces (ip netns add: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command(ipBin, "netns", "del", probe).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del %s: %v: %s", probe, err, out)
	}
	return ipBin
}

// sweepStaleNetns deletes namespaces left behind by earlier test processes
// that died before their cleanup ran (their pid is gone), after killing the
// servers those left running in them.
func sweepStaleNetns(t *testing.T, ipBin string) {
	t.Helper()
	out, err := exec.Command(ipBin, "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], netnsPrefix) {
			continue
		}
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(f[0], netnsPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if pids, err := exec.Command(ipBin, "netns", "pids", f[0]).Output(); err == nil {
			for _, p := range strings.Fields(string(pids)) {
				if pid, err := strconv.Atoi(p); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if exec.Command(ipBin, "netns", "del", f[0]).Run() == nil {
			t.Logf("deleted stale namespace %s", f[0])
		}
	}
}

// netnsLab is a private network: a hub namespace holding a Linux bridge
// and one namespace per node, each wired to the bridge by a veth pair
// (hub end "nI", node end "eth0") with the address subnet.I/24. Nothing is
// created in the test process's own namespace.
type netnsLab struct {
	t      *testing.T
	ipBin  string
	hub    string
	subnet string // the first three octets, "10.231.R"
	nodes  []netnsNode
}

type netnsNode struct {
	ns      string // the node's namespace
	hubVeth string // the veth's end in the hub, the one the partition downs
	ip      string
}

// newNetnsLab builds the network; t.Cleanup deletes the veths and the
// namespaces, also when the test fails half-way through the set-up.
func newNetnsLab(t *testing.T, ipBin, tag string, octet, n int) *netnsLab {
	t.Helper()
	name := fmt.Sprintf("%s%d-%s", netnsPrefix, os.Getpid(), tag)
	l := &netnsLab{t: t, ipBin: ipBin, hub: name + "-hub", subnet: fmt.Sprintf("10.231.%d", octet)}
	var created []string
	t.Cleanup(func() {
		for _, nd := range l.nodes {
			_ = exec.Command(ipBin, "-n", l.hub, "link", "del", nd.hubVeth).Run()
		}
		for i := len(created) - 1; i >= 0; i-- {
			if out, err := exec.Command(ipBin, "netns", "del", created[i]).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", created[i], err, out)
			}
		}
	})
	l.must("netns", "add", l.hub)
	created = append(created, l.hub)
	l.must("-n", l.hub, "link", "add", "br0", "type", "bridge")
	l.must("-n", l.hub, "link", "set", "br0", "up")
	for i := 1; i <= n; i++ {
		nd := netnsNode{ns: fmt.Sprintf("%s-n%d", name, i), hubVeth: fmt.Sprintf("n%d", i), ip: fmt.Sprintf("%s.%d", l.subnet, i)}
		l.must("netns", "add", nd.ns)
		created = append(created, nd.ns)
		l.must("-n", l.hub, "link", "add", nd.hubVeth, "type", "veth", "peer", "name", "eth0", "netns", nd.ns)
		l.nodes = append(l.nodes, nd)
		l.must("-n", l.hub, "link", "set", nd.hubVeth, "master", "br0")
		l.must("-n", l.hub, "link", "set", nd.hubVeth, "up")
		l.must("-n", nd.ns, "link", "set", "lo", "up")
		l.must("-n", nd.ns, "addr", "add", nd.ip+"/24", "dev", "eth0")
		l.must("-n", nd.ns, "link", "set", "eth0", "up")
	}
	return l
}

func (l *netnsLab) must(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(l.ipBin, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// setLink takes node i's hub-side veth down (a partition: the node keeps
// its address but no frame reaches or leaves it) or up again.
func (l *netnsLab) setLink(i int, up bool) {
	l.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	l.must("-n", l.hub, "link", "set", l.nodes[i].hubVeth, state)
}

// netnsHTTP routes the test's HTTP connections into the node namespaces:
// a connection to a registered address is dialed from inside that
// namespace (to the node's own address, so it works across partitions);
// any other address is dialed normally.
type netnsHTTP struct {
	mu     sync.Mutex
	routes map[string]string // host:port → namespace file
}

// useNetnsHTTP points the shared client hc (used by status, put, get and
// digest) at a netns-aware transport for the duration of the test.
func useNetnsHTTP(t *testing.T) *netnsHTTP {
	n := &netnsHTTP{routes: map[string]string{}}
	tr := &http.Transport{DialContext: n.dial, MaxIdleConnsPerHost: 8}
	prev := hc.Transport
	hc.Transport = testTransport{tr}
	t.Cleanup(func() {
		hc.Transport = prev
		tr.CloseIdleConnections()
	})
	return n
}

func (n *netnsHTTP) add(addr, ns string) {
	n.mu.Lock()
	n.routes[addr] = netnsRunDir + "/" + ns
	n.mu.Unlock()
}

func (n *netnsHTTP) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	nsFile, ok := n.routes[addr]
	n.mu.Unlock()
	if !ok {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return dialInNetns(ctx, nsFile, network, addr)
}

// dialInNetns dials from inside the network namespace bound at nsFile. The
// socket is created on an OS thread moved into that namespace; the thread
// is never unlocked, so it exits with its goroutine instead of going back
// to the scheduler with the wrong namespace. The connection then works
// from any goroutine.
func dialInNetns(ctx context.Context, nsFile, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(nsFile)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		_ = f.Close()
		if err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", nsFile, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// lookup reads a znode with a linearizable read: found and its data, or
// not found (404). Other answers and transport errors are retried a few
// times (a loaded CI machine can miss the client timeout once).
func lookup(addr, path string) (found bool, data string, err error) {
	for range 3 {
		if found, data, err = lookupOnce(addr, path); err == nil {
			break
		}
	}
	return found, data, err
}

func lookupOnce(addr, path string) (found bool, data string, err error) {
	resp, err := hc.Get("http://" + addr + "/v1/znode" + path + "?linearizable=1")
	if err != nil {
		return false, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return true, string(b), nil
	case http.StatusNotFound:
		return false, "", nil
	}
	return false, "", fmt.Errorf("GET %s: %s %s", path, resp.Status, b)
}

// waitUntil polls cond every 50ms until it holds and returns how long that
// took, or fails the test after timeout.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// clusterSecrets are the files of a cluster key and an HTTP token.
type clusterSecrets struct{ key, token string }

// writeSecrets writes a cluster key and an HTTP token, and makes the tests'
// HTTP client (hc) send the token until the test ends.
func writeSecrets(t *testing.T) clusterSecrets {
	t.Helper()
	dir := t.TempDir()
	s := clusterSecrets{key: filepath.Join(dir, "cluster.key"), token: filepath.Join(dir, "http.token")}
	for file, v := range map[string]string{s.key: strings.Repeat("k3y-", 10), s.token: strings.Repeat("t0k-", 6)} {
		if err := os.WriteFile(file, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	prev, _ := testTokenFile.Load().(string)
	testTokenFile.Store(s.token)
	t.Cleanup(func() { testTokenFile.Store(prev) })
	return s
}
