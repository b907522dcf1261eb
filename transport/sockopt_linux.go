//go:build linux

package transport

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// messageUserTimeout is how long a peer may leave sent messages
// unacknowledged before the connection is dropped and redialled.
const messageUserTimeout = 3 * time.Second

// setUserTimeout makes the kernel drop a peer connection whose sent data
// stays unacknowledged for d (TCP_USER_TIMEOUT). Without it a connection
// across a healed partition waits out TCP's growing retransmission backoff
// (seconds) before it carries raft traffic again; with it the writer
// redials at once. Connections that are not plain TCP are left alone.
func setUserTimeout(c net.Conn, d time.Duration) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
	})
}
