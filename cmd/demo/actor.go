package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/grovekit/grove/client"
)

// Session timeouts. A client that is going to die gets a short one, so
// the cluster notices quickly; the others get a longer one, so a raft
// leader election never costs them their session or their lock.
const (
	shortTimeout = 1500 * time.Millisecond
	longTimeout  = 6 * time.Second
)

// actor is one client of the demo (a worker, a candidate, a watcher, a
// consumer) with its own session, as if it were its own process.
type actor struct {
	name string
	s    *client.Session
	plug *plug
	rng  *rand.Rand // this actor's own randomness, seeded from the demo's
}

// die makes the actor's process "die": its connection drops and it never
// talks to the cluster again, so it can neither finish its work nor close
// its session. The cluster expires the session after its timeout.
func (a *actor) die() { a.plug.pull() }

// close ends the actor's session. A dead actor's session is let through
// to the cluster again first, to learn that it expired.
func (a *actor) close() {
	a.plug.restore()
	ctx, cancel := context.WithTimeout(context.Background(), longTimeout)
	defer cancel()
	_ = a.s.Close(ctx)
}

// work pretends to work for 10ms plus a random part of upTo more; it
// returns early with ctx's error.
func (a *actor) work(ctx context.Context, upTo time.Duration) error {
	t := time.NewTimer(10*time.Millisecond + time.Duration(a.rng.Int64N(int64(upTo))))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errPulled is what a pulled plug answers a dial with.
var errPulled = errors.New("demo: this client is dead")

// plug is a client dialer whose connections can all be cut at once, as
// when a client's machine dies: pull closes every connection dialled
// through it and refuses new ones; restore lets dials through again.
// Safe for concurrent use.
type plug struct {
	mu     sync.Mutex
	pulled bool
	conns  []net.Conn
}

// dial is a client.WithDialer dialer.
func (p *plug) dial(ctx context.Context, addr string) (net.Conn, error) {
	p.mu.Lock()
	pulled := p.pulled
	p.mu.Unlock()
	if pulled {
		return nil, errPulled
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pulled {
		_ = c.Close()
		return nil, errPulled
	}
	p.conns = append(p.conns, c)
	return c, nil
}

// pull cuts every connection and refuses new ones.
func (p *plug) pull() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pulled = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// restore lets dials through again.
func (p *plug) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pulled = false
}
