// Package accept runs a client port: the accept loop, the set of open
// connections, and closing them all — with the port, or when the node it
// serves stops. The native front (package front) and the ZooKeeper front
// (package zkwire) share it.
package accept

import (
	"errors"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("accept: port closed")

// Conn is one served connection.
type Conn interface {
	comparable
	// Serve runs the connection until it ends.
	Serve()
	// Close ends the connection; Serve then returns.
	Close()
}

// Port accepts connections and tracks them until they end.
type Port[C Conn] struct {
	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	conns  map[C]struct{}
	closed bool
	closec chan struct{} // closed by Close
	wg     sync.WaitGroup
}

// New returns a Port that also closes when stop closes (for example when
// the node it serves stops: its clients must move to live servers).
func New[C Conn](stop <-chan struct{}) *Port[C] {
	p := &Port[C]{lns: map[net.Listener]struct{}{}, conns: map[C]struct{}{}, closec: make(chan struct{})}
	go func() {
		select {
		case <-stop:
			p.Close()
		case <-p.closec:
		}
	}()
	return p
}

// Serve accepts connections on ln, wrapping each with newConn and serving
// it on its own goroutine, until Close (then it returns ErrClosed) or ln
// fails. Temporary accept errors back off up to a second.
func (p *Port[C]) Serve(ln net.Listener, newConn func(net.Conn) C) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = ln.Close()
		return ErrClosed
	}
	p.lns[ln] = struct{}{}
	p.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if p.isClosed() {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := newConn(nc)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = nc.Close()
			return ErrClosed
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go func() {
			defer p.wg.Done()
			c.Serve()
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
	}
}

func (p *Port[C]) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Close stops accepting, closes every connection and waits for them.
func (p *Port[C]) Close() {
	p.mu.Lock()
	if !p.closed {
		close(p.closec)
	}
	p.closed = true
	for ln := range p.lns {
		_ = ln.Close()
	}
	conns := make([]C, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// Conns returns the open connections.
func (p *Port[C]) Conns() []C {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]C, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	return out
}

// Count returns the number of open connections.
func (p *Port[C]) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
