//go:build !linux

package transport

import (
	"net"
	"time"
)

// messageUserTimeout is unused where TCP_USER_TIMEOUT is not available.
const messageUserTimeout = 3 * time.Second

// setUserTimeout is a no-op where TCP_USER_TIMEOUT is not available.
func setUserTimeout(net.Conn, time.Duration) {}
