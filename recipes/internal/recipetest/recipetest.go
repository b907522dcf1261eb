// Package recipetest runs recipe tests against an in-process three-node
// cluster served on client ports, with sessions whose network a test can
// cut (to expire them, or to drop their connection mid-call). The ports
// are real loopback sockets (New) or in-memory pipes (NewInMemory, for
// tests that run in a testing/synctest bubble).
package recipetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/front"
	"github.com/grovekit/grove/internal/memnet"
)

// Rig is a cluster and the sessions of one test.
type Rig struct {
	T     testing.TB
	C     *coretest.Cluster
	Addrs []string // client port of node i+1

	mem *memnet.Network // nil: loopback sockets

	mu     sync.Mutex
	fronts []func() // stop the client ports, after every session closed
}

// New starts a three-node cluster (n nodes if given) with client ports on
// loopback sockets.
func New(t testing.TB, n ...int) *Rig { return start(t, nil, n...) }

// NewInMemory is New with the client ports on an in-memory network, so
// that the test can run in a testing/synctest bubble: session timeouts,
// leases and retries then pass on the bubble's fake clock.
func NewInMemory(t testing.TB, n ...int) *Rig { return start(t, memnet.New(), n...) }

func start(t testing.TB, mem *memnet.Network, n ...int) *Rig {
	size := 3
	if len(n) > 0 {
		size = n[0]
	}
	c := coretest.NewCluster(t, size, coretest.WithConfig(func(cfg *core.Config) { cfg.MinSessionTimeout = 100 * time.Millisecond }))
	c.WaitLeader(context.Background())
	r := &Rig{T: t, C: c, mem: mem}
	// Registered before any session, so it runs after their cleanups:
	// sessions close while the ports (also those of restarted nodes) are up.
	t.Cleanup(func() {
		r.mu.Lock()
		fronts := r.fronts
		r.mu.Unlock()
		for _, stop := range fronts {
			stop()
		}
	})
	for _, id := range c.IDs() {
		r.Addrs = append(r.Addrs, r.serveAt(c.Node(id), ""))
	}
	return r
}

// serveAt serves n's client port at addr (a fresh one if empty) until n
// stops or the test ends.
func (r *Rig) serveAt(n *core.Node, addr string) string {
	t := r.T
	t.Helper()
	srv, err := front.New(front.Config{Node: n})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ { // a port just closed may take a moment to be free
		if ln, err = r.listen(addr); err == nil || i == 100 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	r.mu.Lock()
	r.fronts = append(r.fronts, func() { _ = srv.Close(); <-done })
	r.mu.Unlock()
	return ln.Addr().String()
}

func (r *Rig) listen(addr string) (net.Listener, error) {
	if r.mem != nil {
		return r.mem.Listen(addr)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	return net.Listen("tcp", addr)
}

func (r *Rig) dial(ctx context.Context, addr string) (net.Conn, error) {
	if r.mem != nil {
		return r.mem.Dial(ctx, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// Restart restarts crashed node id (1-based) and serves it at its old
// client address.
func (r *Rig) Restart(id uint64) {
	n := r.C.Restart(id)
	r.serveAt(n, r.Addrs[id-1])
}

// Chaos disturbs the cluster until ctx ends, one thing at a time, every
// interval: it crashes and restarts a node (never more than one down),
// isolates one for a while, or cuts a session's network long enough for
// the session to expire (then heals it). seed makes the run repeatable.
func (r *Rig) Chaos(ctx context.Context, seed uint64, interval time.Duration, nets func() []*Net, expire time.Duration) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ids := r.C.IDs()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		switch rng.IntN(3) {
		case 0:
			id := ids[rng.IntN(len(ids))]
			r.C.Crash(id)
			sleepCtx(ctx, interval)
			r.Restart(id)
		case 1:
			id := ids[rng.IntN(len(ids))]
			r.C.Net.Isolate(id)
			sleepCtx(ctx, interval)
			r.C.Net.Heal()
		case 2:
			if ns := nets(); len(ns) > 0 {
				n := ns[rng.IntN(len(ns))]
				n.Cut()
				sleepCtx(ctx, expire)
				n.Heal()
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Net is the network of one session: Cut drops its connection and keeps
// it from reconnecting until Heal.
type Net struct {
	base  func(ctx context.Context, addr string) (net.Conn, error)
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (n *Net) dial(ctx context.Context, addr string) (net.Conn, error) {
	n.mu.Lock()
	cut := n.cut
	n.mu.Unlock()
	if cut {
		return nil, fmt.Errorf("recipetest: network cut")
	}
	c, err := n.base(ctx, addr)
	if err == nil {
		n.mu.Lock()
		n.conns = append(n.conns, c)
		n.mu.Unlock()
	}
	return c, err
}

// Cut drops the session's connection and refuses new ones.
func (n *Net) Cut() {
	n.mu.Lock()
	n.cut = true
	conns := n.conns
	n.conns = nil
	n.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// Drop drops the session's connection once; it reconnects at once.
func (n *Net) Drop() {
	n.mu.Lock()
	conns := n.conns
	n.conns = nil
	n.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// Heal lets the session reconnect.
func (n *Net) Heal() {
	n.mu.Lock()
	n.cut = false
	n.mu.Unlock()
}

// Session dials a remote session with the given timeout; it is closed when
// the test ends.
func (r *Rig) Session(timeout time.Duration) (*client.Session, *Net) {
	r.T.Helper()
	n := &Net{base: r.dial}
	s, err := client.Dial(context.Background(), r.Addrs, client.WithTimeout(timeout), client.WithDialer(n.dial))
	if err != nil {
		r.T.Fatal(err)
	}
	r.T.Cleanup(func() {
		n.Heal()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s, n
}

// Embedded opens an in-process session on the leader.
func (r *Rig) Embedded() *client.Session {
	r.T.Helper()
	s, err := r.C.WaitLeader(context.Background()).Session(context.Background())
	if err != nil {
		r.T.Fatal(err)
	}
	r.T.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// Tree lists every znode under root (root excluded), sorted.
func Tree(ctx context.Context, s *client.Session, root string) ([]string, error) {
	var out []string
	var walk func(p string) error
	walk = func(p string) error {
		names, _, err := s.Children(ctx, p, client.Linearizable())
		if err != nil {
			return err
		}
		for _, n := range names {
			c := grove.Join(p, n)
			out = append(out, c)
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	err := walk(root)
	slices.Sort(out)
	return out, err
}

// WaitCount waits until exactly n znodes under root have names containing
// sub, and fails the test after 30 s.
func WaitCount(t testing.TB, s *client.Session, root, sub string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		all, err := Tree(context.Background(), s, root)
		if err != nil && !errors.Is(err, grove.ErrNoNode) {
			t.Fatal(err)
		}
		var got []string
		for _, p := range all {
			if strings.Contains(grove.Base(p), sub) {
				got = append(got, p)
			}
		}
		if len(got) == n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("znodes under %s matching %q: %v, want %d of them", root, sub, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitTree waits until the znodes under root whose names contain sub are
// exactly want (sorted), and fails the test after 30 s.
func WaitTree(t testing.TB, s *client.Session, root, sub string, want []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got []string
	for {
		all, err := Tree(context.Background(), s, root)
		if err != nil && !errors.Is(err, grove.ErrNoNode) {
			t.Fatal(err)
		}
		got = got[:0]
		for _, p := range all {
			if strings.Contains(grove.Base(p), sub) {
				got = append(got, p)
			}
		}
		if slices.Equal(got, want) || (len(got) == 0 && len(want) == 0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("znodes under %s matching %q: %v, want %v", root, sub, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LostAt is when a lost hold's promise ended, for property checkers: the
// session deadline if it has passed (the hold was given up at it), else
// now (the hold went some other way, observed now).
func LostAt(deadline time.Time) time.Time {
	if deadline.Before(time.Now()) {
		return deadline
	}
	return time.Now()
}

// RecipeGoroutines returns the stacks of the goroutines running recipe
// code (a frame in a recipe package or contend, test code excluded). A
// test calls it right after a session's Close returned: a recipe's
// goroutine belongs to the session, so none may be left.
func RecipeGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if recipeFrame.MatchString(g) {
			out = append(out, g)
		}
	}
	return out
}

var recipeFrame = regexp.MustCompile(`(?m)^github\.com/grovekit/grove/recipes/(lock|election|queue|config|internal/contend)\.`)
