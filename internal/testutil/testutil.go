// Package testutil holds helpers shared by Grove's tests.
package testutil

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// handedOut holds every port FreeAddr returned in this process: a port
// checked free but not yet bound by its server (a test picks all of a
// cluster's ports before starting any node) must not be returned twice.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreeAddr returns a loopback host:port free for both TCP and UDP (gossip
// uses both). Ports come from below Linux's ephemeral range (32768+), so
// outgoing connections of other tests do not grab them between this check
// and the server's own listen. It never returns the same port twice in one
// process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if handedOut.ports[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = u.Close()
		handedOut.ports[port] = true
		return addr
	}
	t.Fatal("testutil: no free port")
	return ""
}

// Server is a client port a test serves: front.Server or zkwire.Server.
type Server interface {
	Serve(net.Listener) error
	Close() error
}

// Serve serves srv on a fresh loopback port until the test ends (then
// Serve must end with closed, or the test fails) and returns the address.
func Serve(t testing.TB, srv Server, closed error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ServeOn(t, srv, ln, closed)
}

// ServeOn is Serve on a listener of the caller's (an in-memory one, say).
func ServeOn(t testing.TB, srv Server, ln net.Listener, closed error) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; err != nil && !errors.Is(err, closed) {
			t.Errorf("testutil: serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// Seed returns the seed of a randomized test: flagValue if set, else a
// random one. It logs the seed with the flag that replays it.
func Seed(t testing.TB, flagValue uint64, flagName string) uint64 {
	t.Helper()
	seed := flagValue
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay with -%s=%d)", seed, flagName, seed)
	return seed
}
