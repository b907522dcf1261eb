package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/front"
	"github.com/grovekit/grove/front/fronttest"
	"github.com/grovekit/grove/internal/memnet"
	"github.com/grovekit/grove/internal/testutil"
)

func mustDial(t *testing.T, addrs []string, opts ...client.Option) *client.Session {
	t.Helper()
	s, err := client.Dial(t.Context(), addrs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// netCtl is a dialer a test steers: it can refuse addresses and sever every
// connection it made.
type netCtl struct {
	base     func(ctx context.Context, addr string) (net.Conn, error)
	mu       sync.Mutex
	allow    func(addr string) bool // nil: all
	conns    []net.Conn
	attempts map[string]int
}

func newNetCtl() *netCtl {
	var d net.Dialer
	return &netCtl{attempts: map[string]int{}, base: func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}}
}

// newMemNetCtl is a netCtl on an in-memory network.
func newMemNetCtl(nw *memnet.Network) *netCtl {
	return &netCtl{attempts: map[string]int{}, base: nw.Dial}
}

func (n *netCtl) dial(ctx context.Context, addr string) (net.Conn, error) {
	n.mu.Lock()
	n.attempts[addr]++
	allow := n.allow
	n.mu.Unlock()
	if allow != nil && !allow(addr) {
		return nil, fmt.Errorf("netctl: %s is unreachable", addr)
	}
	c, err := n.base(ctx, addr)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.conns = append(n.conns, c)
	n.mu.Unlock()
	return c, nil
}

// only lets dials reach addrs alone (none: nothing is reachable).
func (n *netCtl) only(addrs ...string) {
	set := map[string]bool{}
	for _, a := range addrs {
		set[a] = true
	}
	n.mu.Lock()
	n.allow = func(a string) bool { return set[a] }
	n.mu.Unlock()
}

func (n *netCtl) all() {
	n.mu.Lock()
	n.allow = nil
	n.mu.Unlock()
}

func (n *netCtl) sever() {
	n.mu.Lock()
	conns := n.conns
	n.conns = nil
	n.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (n *netCtl) tries(addr string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attempts[addr]
}

// waitState waits for st on the session's Events.
func waitState(t *testing.T, s *client.Session, st client.State) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case got, ok := <-s.Events():
			if !ok {
				t.Fatalf("events closed waiting for %s (err %v)", st, s.Err())
			}
			if got == st {
				return
			}
		case <-timeout:
			t.Fatalf("no %s event", st)
		}
	}
}

func within(t *testing.T, ch <-chan grove.Event, what string) grove.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed without an event", what)
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no event", what)
	}
	return grove.Event{}
}

func TestRemoteBasics(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	c.WaitLeader(t.Context())
	addrs := fronttest.ServeAll(t, c.Nodes())
	s := mustDial(t, addrs)
	ctx := t.Context()
	if _, err := s.Create(ctx, "/a", []byte("x"), grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	data, stat, ch, err := s.GetW(ctx, "/a")
	if err != nil || string(data) != "x" || stat.Version != 0 {
		t.Fatalf("get: %q %+v %v", data, stat, err)
	}
	if _, err := s.Set(ctx, "/a", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	if ev := within(t, ch, "GetW"); ev.Type != grove.EventNodeDataChanged || ev.Path != "/a" {
		t.Fatalf("event %+v", ev)
	}
	if _, err := s.Create(ctx, "/a", nil, grove.ModePersistent, grove.OpenACLUnsafe); !errors.Is(err, grove.ErrNodeExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "/a"); !errors.Is(err, grove.ErrSessionClosed) {
		t.Fatalf("get after close: %v", err)
	}
}

// The server decides identities: a remote client cannot claim one it did
// not authenticate.
func TestRemoteACLUsesServerSideIdentities(t *testing.T) {
	c := coretest.NewCluster(t, 1)
	c.WaitLeader(t.Context())
	addrs := fronttest.ServeAll(t, c.Nodes())
	ctx := t.Context()
	owner := mustDial(t, addrs, client.WithAuth("digest", []byte("alice:secret")))
	if _, err := owner.Create(ctx, "/private", []byte("p"), grove.ModePersistent, grove.CreatorAllACL); err != nil {
		t.Fatal(err)
	}
	if _, _, err := owner.Get(ctx, "/private"); err != nil {
		t.Fatalf("owner read: %v", err)
	}
	other := mustDial(t, addrs)
	if _, _, err := other.Get(ctx, "/private"); !errors.Is(err, grove.ErrNoAuth) {
		t.Fatalf("unauthenticated read: %v", err)
	}
	if err := other.AddAuth(ctx, "digest", []byte("alice:wrong")); err != nil {
		t.Fatalf("add auth: %v", err)
	}
	if _, _, err := other.Get(ctx, "/private"); !errors.Is(err, grove.ErrNoAuth) {
		t.Fatalf("read with a wrong password: %v", err)
	}
}

func TestRemoteSizeLimits(t *testing.T) {
	c := coretest.NewCluster(t, 1)
	c.WaitLeader(t.Context())
	addr, _ := fronttest.Serve(t, c.Nodes()[0], front.Config{MaxFrame: 2 << 20})
	s := mustDial(t, []string{addr})
	ctx := t.Context()
	if _, err := s.Create(ctx, "/big", make([]byte, 3<<20), grove.ModePersistent, grove.OpenACLUnsafe); !errors.Is(err, grove.ErrTooLarge) {
		t.Fatalf("a request over the frame limit: %v", err)
	}
	if _, err := s.Create(ctx, "/big", make([]byte, 1<<20+1), grove.ModePersistent, grove.OpenACLUnsafe); !errors.Is(err, grove.ErrTooLarge) {
		t.Fatalf("data over the node's limit: %v", err)
	}
	if _, err := s.Create(ctx, "/ok", make([]byte, 1<<20), grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatalf("data at the limit: %v", err)
	}
}

// The connection drops while writes are in flight and watches are set;
// meanwhile other sessions change what is watched. The session re-attaches
// elsewhere: every write applies exactly once, every watch fires once for
// what it missed, and persistent watches go on.
func TestRemoteReconnectResendsAndRestoresWatches(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	leader := c.WaitLeader(t.Context())
	addrs := fronttest.ServeAll(t, c.Nodes())
	ctx := t.Context()
	ctl := newNetCtl()
	ctl.only(addrs[0])
	s := mustDial(t, addrs, client.WithDialer(ctl.dial), client.WithTimeout(10*time.Second))
	other := mustSession(t, leader)
	for _, p := range []string{"/w", "/w/a", "/p", "/seq"} {
		if _, err := s.Create(ctx, p, []byte("0"), grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
			t.Fatal(err)
		}
	}
	_, _, dataW, err := s.GetW(ctx, "/w/a")
	if err != nil {
		t.Fatal(err)
	}
	_, _, childW, err := s.ChildrenW(ctx, "/w")
	if err != nil {
		t.Fatal(err)
	}
	_, _, existW, err := s.ExistsW(ctx, "/w/missing")
	if err != nil {
		t.Fatal(err)
	}
	_, _, quietW, err := s.GetW(ctx, "/p")
	if err != nil {
		t.Fatal(err)
	}
	pw, err := s.AddWatch(ctx, "/p", false)
	if err != nil {
		t.Fatal(err)
	}

	ctl.only() // nothing reachable
	ctl.sever()
	waitState(t, s, client.StateDisconnected)
	// Writes of the disconnected session queue up...
	var wg sync.WaitGroup
	created := make([]string, 20)
	errc := make(chan error, 20)
	for i := range created {
		wg.Go(func() {
			p, err := s.Create(ctx, "/seq/n-", nil, grove.ModePersistentSequential, grove.OpenACLUnsafe)
			created[i] = p
			if err != nil {
				errc <- err
			}
		})
	}
	// ...while others change what it watches.
	if _, err := other.Set(ctx, "/w/a", []byte("1"), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create(ctx, "/w/missing", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Set(ctx, "/p", []byte("1"), -1); err != nil {
		t.Fatal(err)
	}
	ctl.only(addrs[1], addrs[2])
	waitState(t, s, client.StateReconnected)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("a write failed across the reconnect: %v", err)
	}
	names, _, err := s.Children(ctx, "/seq")
	if err != nil || len(names) != 20 {
		t.Fatalf("sequential creates across a reconnect: %d nodes (%v), want 20", len(names), err)
	}
	if ev := within(t, dataW, "data watch"); ev.Type != grove.EventNodeDataChanged || ev.Path != "/w/a" {
		t.Fatalf("data watch: %+v", ev)
	}
	if ev := within(t, childW, "child watch"); ev.Type != grove.EventNodeChildrenChanged || ev.Path != "/w" {
		t.Fatalf("child watch: %+v", ev)
	}
	if ev := within(t, existW, "exists watch"); ev.Type != grove.EventNodeCreated || ev.Path != "/w/missing" {
		t.Fatalf("exists watch: %+v", ev)
	}
	if ev := within(t, quietW, "data watch on /p"); ev.Type != grove.EventNodeDataChanged {
		t.Fatalf("data watch on /p: %+v", ev)
	}
	if ev := within(t, pw.C, "persistent watch, missed change"); ev.Type != grove.EventNodeDataChanged {
		t.Fatalf("persistent watch: %+v", ev)
	}
	st, err := other.Set(ctx, "/p", []byte("2"), -1)
	if err != nil {
		t.Fatal(err)
	}
	if ev := within(t, pw.C, "persistent watch after the reconnect"); ev.Zxid != st.Mzxid {
		t.Fatalf("persistent watch after the reconnect: %+v, want zxid %d", ev, st.Mzxid)
	}
	// Each one-shot watch fired once: its channel is closed now.
	for _, ch := range []<-chan grove.Event{dataW, childW, existW, quietW} {
		if ev, ok := <-ch; ok {
			t.Fatalf("a one-shot watch fired twice: %+v", ev)
		}
	}
}

// A client that has seen newer state never re-attaches to a server behind
// it: it waits for an up-to-date one.
func TestRemoteRefusesLaggingServer(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	leader := c.WaitLeader(t.Context())
	ctx := t.Context()
	var lagging, good *core.Node
	for _, n := range c.Nodes() {
		switch {
		case n == leader:
		case lagging == nil:
			lagging = n
		default:
			good = n
		}
	}
	lagAddr, lagSrv := fronttest.Serve(t, lagging, front.Config{BehindWait: 50 * time.Millisecond})
	goodAddr, _ := fronttest.Serve(t, good, front.Config{})
	leadAddr, _ := fronttest.Serve(t, leader, front.Config{})
	ctl := newNetCtl()
	ctl.only(leadAddr)
	s := mustDial(t, []string{lagAddr, goodAddr, leadAddr}, client.WithDialer(ctl.dial))

	c.Net.Isolate(lagging.ID())
	if _, err := s.Create(ctx, "/fresh", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	ctl.only(lagAddr)
	ctl.sever()
	waitState(t, s, client.StateDisconnected)
	deadline := time.Now().Add(30 * time.Second)
	for ctl.tries(lagAddr) < 4 {
		if time.Now().After(deadline) {
			t.Fatal("the client never tried the lagging server")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Refused every time: a read cannot be served (it would be stale).
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, _, err := s.Get(rctx, "/fresh")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read while only a lagging server is reachable: %v", err)
	}
	if n := lagSrv.SessionCount(); n != 0 {
		t.Fatalf("the lagging server holds %d sessions", n)
	}
	ctl.only(lagAddr, goodAddr)
	waitState(t, s, client.StateReconnected)
	if _, _, err := s.Get(ctx, "/fresh"); err != nil {
		t.Fatalf("read after re-attaching to an up-to-date server: %v", err)
	}
	c.Net.Heal()
}

// A client that stops pinging loses its session: its ephemerals vanish on
// every server, and the client learns it on its next contact. In a
// synctest bubble, over in-memory client ports: the second of silence is
// fake time.
func TestRemoteSessionExpiresWithoutPings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := coretest.NewCluster(t, 3)
		c.WaitLeader(t.Context())
		nw := memnet.New()
		addrs := fronttest.ServeAllIn(t, nw, c.Nodes())
		ctx := t.Context()
		ctl := newMemNetCtl(nw)
		s := mustDial(t, addrs, client.WithDialer(ctl.dial), client.WithTimeout(time.Second))
		if _, err := s.Create(ctx, "/eph", nil, grove.ModeEphemeral, grove.OpenACLUnsafe); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.Nodes() {
			if _, _, err := n.Exists(ctx, core.Read{MinZxid: 0}, "/eph"); err != nil && !errors.Is(err, grove.ErrNoNode) {
				t.Fatal(err)
			}
		}
		ctl.only()
		ctl.sever()
		waitState(t, s, client.StateDisconnected)
		deadline := time.Now().Add(30 * time.Second)
		for _, n := range c.Nodes() {
			for {
				_, _, err := n.Exists(ctx, core.Read{}, "/eph")
				if errors.Is(err, grove.ErrNoNode) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %x still has the ephemeral of a silent client: %v", n.ID(), err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		ctl.all()
		waitState(t, s, client.StateExpired)
		<-s.Done()
		if !errors.Is(s.Err(), grove.ErrSessionExpired) {
			t.Fatalf("Err = %v", s.Err())
		}
	})
}

// Ten thousand watches move with the session to another server.
func TestRemoteTenThousandWatchesSurviveReconnect(t *testing.T) {
	const n = 10000
	c := coretest.NewCluster(t, 3)
	leader := c.WaitLeader(t.Context())
	addrs := fronttest.ServeAll(t, c.Nodes())
	ctx := t.Context()
	ctl := newNetCtl()
	ctl.only(addrs[0])
	s := mustDial(t, addrs, client.WithDialer(ctl.dial))
	other := mustSession(t, leader)
	if _, err := s.Create(ctx, "/many", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 500 {
		var ops []grove.Op
		for j := i; j < i+500; j++ {
			ops = append(ops, grove.CreateOp(fmt.Sprintf("/many/%05d", j), nil, grove.ModePersistent, grove.OpenACLUnsafe))
		}
		if _, err := s.Multi(ctx, ops...); err != nil {
			t.Fatal(err)
		}
	}
	chans := make([]<-chan grove.Event, n)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				_, _, ch, err := s.GetW(ctx, fmt.Sprintf("/many/%05d", i))
				if err != nil {
					t.Error(err)
					return
				}
				chans[i] = ch
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ctl.only(addrs[1], addrs[2])
	ctl.sever()
	waitState(t, s, client.StateReconnected)
	// Change every node after the move, in batches.
	for i := 0; i < n; i += 500 {
		var ops []grove.Op
		for j := i; j < i+500; j++ {
			ops = append(ops, grove.SetOp(fmt.Sprintf("/many/%05d", j), []byte("x"), -1))
		}
		if _, err := other.Multi(ctx, ops...); err != nil {
			t.Fatal(err)
		}
	}
	for i, ch := range chans {
		if ev := within(t, ch, fmt.Sprintf("watch %d", i)); ev.Type != grove.EventNodeDataChanged {
			t.Fatalf("watch %d: %+v", i, ev)
		}
	}
}

// A directory of 200,000 children lists page by page (and whole).
func TestRemoteListsHugeDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("200,000 znodes; run without -short")
	}
	const n = 200000
	c := coretest.NewCluster(t, 1)
	c.WaitLeader(t.Context())
	addrs := fronttest.ServeAll(t, c.Nodes())
	ctx := t.Context()
	s := mustDial(t, addrs)
	if _, err := s.Create(ctx, "/huge", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	const batch = 2000
	for i := 0; i < n; i += batch {
		ops := make([]grove.Op, 0, batch)
		for j := i; j < i+batch; j++ {
			ops = append(ops, grove.CreateOp(fmt.Sprintf("/huge/child-%07d", j), nil, grove.ModePersistent, grove.OpenACLUnsafe))
		}
		if _, err := s.Multi(ctx, ops...); err != nil {
			t.Fatal(err)
		}
	}
	seen, after, pages := 0, "", 0
	for {
		names, more, err := s.ChildrenPage(ctx, "/huge", after, 5000)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if want := fmt.Sprintf("child-%07d", seen); name != want {
				t.Fatalf("name %d is %q, want %q", seen, name, want)
			}
			seen++
		}
		pages++
		if !more {
			break
		}
		after = names[len(names)-1]
	}
	if seen != n || pages != n/5000 {
		t.Fatalf("listed %d names in %d pages, want %d in %d", seen, pages, n, n/5000)
	}
	all, stat, err := s.Children(ctx, "/huge")
	if err != nil || len(all) != n || stat.NumChildren != n {
		t.Fatalf("whole listing: %d names, %d children in stat, %v", len(all), stat.NumChildren, err)
	}
}

// The client port can speak TLS: a client trusting the cluster's CA
// connects, one that does not is refused.
func TestRemoteTLS(t *testing.T) {
	c := coretest.NewCluster(t, 1)
	c.WaitLeader(t.Context())
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "ca")
	certFile, keyFile := ca.MustNodeCert(t, dir, "server")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := fronttest.Serve(t, c.Nodes()[0], front.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	s := mustDial(t, []string{addr}, client.WithTLS(&tls.Config{RootCAs: pool}))
	if _, err := s.Create(t.Context(), "/tls", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, err := client.Dial(ctx, []string{addr}, client.WithTLS(&tls.Config{})); err == nil {
		t.Fatal("a client not trusting the server's CA connected")
	}
	if _, err := client.Dial(ctx, []string{addr}); err == nil {
		t.Fatal("a plain-TCP client connected to a TLS port")
	}
}

// TestFailFastWhenNothingListens checks WithFailFast: Dial gives up at once
// with ErrNoServerListening when every address refuses, and without it
// keeps retrying until its context ends.
func TestFailFastWhenNothingListens(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	// A context that outlives any test: only fail-fast can end the dial.
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	if _, err := client.Dial(ctx, []string{addr, addr}, client.WithFailFast()); !errors.Is(err, client.ErrNoServerListening) {
		t.Fatalf("fail-fast dial: %v, want ErrNoServerListening", err)
	}
	short, cancelShort := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancelShort()
	if _, err := client.Dial(short, []string{addr}); errors.Is(err, client.ErrNoServerListening) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("plain dial: %v, want the context's deadline", err)
	}
}
