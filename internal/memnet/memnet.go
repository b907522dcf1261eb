// Package memnet is an in-memory network of named listeners whose
// connections are net.Pipe ends. Every end's address is "pipe", so a
// port's per-IP connection cap counts all memnet clients as one address. Tests that serve client ports inside a
// testing/synctest bubble use it: a goroutine blocked on a pipe is durably
// blocked, so the bubble's fake clock can move, where one blocked on a real
// socket is not.
package memnet

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
)

// ErrClosed is returned by Accept on a closed listener; it is
// net.ErrClosed, as a real listener's is.
var ErrClosed = fmt.Errorf("memnet: listener closed: %w", net.ErrClosed)

// Network is a set of listeners by address. The zero value is not usable;
// call New.
type Network struct {
	mu        sync.Mutex
	listeners map[string]*Listener
	next      int
}

// New returns an empty network.
func New() *Network { return &Network{listeners: map[string]*Listener{}} }

// Listen listens at addr ("host:port" form), or at a fresh address if addr
// is empty. An address in use is refused, as on a real network.
func (n *Network) Listen(addr string) (*Listener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr == "" {
		n.next++
		addr = fmt.Sprintf("mem:%d", n.next)
	}
	if _, busy := n.listeners[addr]; busy {
		return nil, &net.OpError{Op: "listen", Net: "mem", Addr: Addr(addr), Err: syscall.EADDRINUSE}
	}
	l := &Listener{nw: n, addr: Addr(addr), conns: make(chan net.Conn), done: make(chan struct{})}
	n.listeners[addr] = l
	return l, nil
}

// Dial connects to the listener at addr. With none there it fails at once
// with a connection-refused error, as a closed port does.
func (n *Network) Dial(ctx context.Context, addr string) (net.Conn, error) {
	n.mu.Lock()
	l := n.listeners[addr]
	n.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: "mem", Addr: Addr(addr), Err: syscall.ECONNREFUSED}
	if l == nil {
		return nil, refused
	}
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
	case <-ctx.Done():
		_ = client.Close()
		_ = server.Close()
		return nil, ctx.Err()
	}
	_ = client.Close()
	_ = server.Close()
	return nil, refused
}

// Listener is one address of a Network; it implements net.Listener.
type Listener struct {
	nw    *Network
	addr  Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

// Close stops accepting and frees the address. Connections already
// accepted stay open.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.nw.mu.Lock()
		if l.nw.listeners[string(l.addr)] == l {
			delete(l.nw.listeners, string(l.addr))
		}
		l.nw.mu.Unlock()
	})
	return nil
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return l.addr }

// Addr is an address on a Network.
type Addr string

// Network returns "mem".
func (Addr) Network() string { return "mem" }

// String returns the address.
func (a Addr) String() string { return string(a) }
