// Package accept runs a client port: the accept loop, the set of open
// connections, and closing them all — with the port, or when the node it
// serves stops. The native front (package front) and the ZooKeeper front
// (package zkwire) share it.
package accept

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
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

// Limits bound what one port accepts. Zero fields mean no bound.
type Limits struct {
	// Total caps the connections open at once.
	Total int
	// PerIP caps the connections open at once from one client IP address
	// (ZooKeeper's maxClientCnxns).
	PerIP int
}

// Defaults of LimitsOf.
const (
	DefaultTotal = 10000
	DefaultPerIP = 60 // ZooKeeper's maxClientCnxns
)

// LimitsOf turns a front's settings into Limits: 0 takes the default, a
// negative value means no bound.
func LimitsOf(total, perIP int) Limits {
	pick := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	return Limits{Total: pick(total, DefaultTotal), PerIP: pick(perIP, DefaultPerIP)}
}

// Port accepts connections and tracks them until they end.
type Port[C Conn] struct {
	// Limits bound the connections; set before Serve.
	Limits Limits
	// Logger receives refused connections and accept failures; set before
	// Serve. Nil discards.
	Logger *slog.Logger

	refused atomic.Uint64
	failing atomic.Bool // the last accept failed

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	conns  map[C]struct{}
	perIP  map[string]int
	closed bool
	closec chan struct{} // closed by Close
	wg     sync.WaitGroup
}

// New returns a Port that also closes when stop closes (for example when
// the node it serves stops: its clients must move to live servers).
func New[C Conn](stop <-chan struct{}) *Port[C] {
	p := &Port[C]{lns: map[net.Listener]struct{}{}, conns: map[C]struct{}{}, perIP: map[string]int{}, closec: make(chan struct{})}
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
// fails for good. A connection beyond Limits is closed at once and
// counted. Accept errors that pass (out of file descriptors or memory, a
// connection aborted before it was accepted, a timeout) back off from 5 ms
// up to a second and retry, as net/http does, so a burst of EMFILE leaves
// the port serving once descriptors are free again; Accepting reports
// false meanwhile.
func (p *Port[C]) Serve(ln net.Listener, newConn func(net.Conn) C) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = ln.Close()
		return ErrClosed
	}
	p.lns[ln] = struct{}{}
	p.mu.Unlock()
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if p.isClosed() {
				return ErrClosed
			}
			if !passing(err) {
				p.failing.Store(true)
				return err
			}
			p.failing.Store(true)
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-p.closec:
				return ErrClosed
			}
			continue
		}
		delay = 0
		p.failing.Store(false)
		ip := remoteIP(nc)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = nc.Close()
			return ErrClosed
		}
		if why := p.overLimitLocked(ip); why != "" {
			p.mu.Unlock()
			p.refused.Add(1) // before the close, which the client sees
			_ = nc.Close()
			log.Warn("refused a client connection", "addr", ln.Addr().String(), "remote", nc.RemoteAddr().String(), "why", why)
			continue
		}
		c := newConn(nc)
		p.conns[c] = struct{}{}
		p.perIP[ip]++
		p.wg.Add(1)
		p.mu.Unlock()
		go func() {
			defer p.wg.Done()
			c.Serve()
			p.mu.Lock()
			delete(p.conns, c)
			if p.perIP[ip]--; p.perIP[ip] <= 0 {
				delete(p.perIP, ip)
			}
			p.mu.Unlock()
		}()
	}
}

// overLimitLocked says why a new connection from ip would exceed Limits
// ("" if it would not). The caller holds mu.
func (p *Port[C]) overLimitLocked(ip string) string {
	switch {
	case p.Limits.Total > 0 && len(p.conns) >= p.Limits.Total:
		return "too many connections"
	case p.Limits.PerIP > 0 && p.perIP[ip] >= p.Limits.PerIP:
		return "too many connections from one address"
	}
	return ""
}

// remoteIP is the client's IP address (the whole address if it has no
// port).
func remoteIP(nc net.Conn) string {
	a := nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}

// passing reports whether an accept error is one to retry after a pause.
func passing(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Accepting reports whether the port is taking connections: false once
// Close ran, and while accept fails.
func (p *Port[C]) Accepting() bool { return !p.isClosed() && !p.failing.Load() }

// Refused counts connections closed at once for exceeding Limits.
func (p *Port[C]) Refused() uint64 { return p.refused.Load() }

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
