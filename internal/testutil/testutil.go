// Package testutil holds helpers shared by Grove's tests.
package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// FreeAddr returns a loopback host:port free for both TCP and UDP (gossip
// uses both). Ports come from below Linux's ephemeral range (32768+), so
// outgoing connections of other tests do not grab them between this check
// and the server's own listen.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
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
		return addr
	}
	t.Fatal("testutil: no free port")
	return ""
}
