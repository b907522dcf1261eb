package zkwire_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/internal/memnet"
	"github.com/grovekit/grove/internal/testutil"
	"github.com/grovekit/grove/zkwire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// zkCluster is an in-process Grove cluster with a ZooKeeper port on every
// node.
type zkCluster struct {
	t     testing.TB
	c     *coretest.Cluster
	addrs []string
	srvs  []*zkwire.Server
	mem   *memnet.Network // nil: loopback sockets
}

func newZKCluster(t testing.TB, n int, opts ...coretest.Option) *zkCluster {
	t.Helper()
	c := coretest.NewCluster(t, n, opts...)
	c.WaitLeader(context.Background())
	zc := &zkCluster{t: t, c: c}
	for _, nd := range c.Nodes() {
		addr, srv := serve(t, nd, zkwire.Config{})
		zc.addrs = append(zc.addrs, addr)
		zc.srvs = append(zc.srvs, srv)
	}
	return zc
}

// newMemZKCluster is newZKCluster with the ZooKeeper ports on an
// in-memory network, for tests in a synctest bubble; connect through
// zc.dial. The addresses are IP literals so that go-zookeeper's host
// provider needs no DNS.
func newMemZKCluster(t testing.TB, n int) *zkCluster {
	t.Helper()
	c := coretest.NewCluster(t, n)
	c.WaitLeader(context.Background())
	zc := &zkCluster{t: t, c: c, mem: memnet.New()}
	for i, nd := range c.Nodes() {
		srv, err := zkwire.New(zkwire.Config{Node: nd})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := zc.mem.Listen(fmt.Sprintf("127.0.0.1:%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		zc.addrs = append(zc.addrs, testutil.ServeOn(t, srv, ln, zkwire.ErrClosed))
		zc.srvs = append(zc.srvs, srv)
	}
	return zc
}

// dial is a zk.Dialer onto the cluster's network.
func (zc *zkCluster) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	if zc.mem == nil {
		return net.DialTimeout(network, addr, timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return zc.mem.Dial(ctx, addr)
}

// serve serves n's ZooKeeper protocol on a loopback port until the test
// ends.
func serve(t testing.TB, n *core.Node, cfg zkwire.Config) (string, *zkwire.Server) {
	t.Helper()
	cfg.Node = n
	s, err := zkwire.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.Serve(t, s, zkwire.ErrClosed), s
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// connect opens a go-zookeeper session and waits until it has one.
func connect(t testing.TB, addrs []string, timeout time.Duration) (*zk.Conn, <-chan zk.Event) {
	return connectVia(t, addrs, timeout, nil)
}

// connectVia is connect through dial (nil: a plain dialer).
func connectVia(t testing.TB, addrs []string, timeout time.Duration, dial zk.Dialer) (*zk.Conn, <-chan zk.Event) {
	t.Helper()
	if dial == nil {
		dial = net.DialTimeout
	}
	conn, events, err := zk.Connect(addrs, timeout, zk.WithLogger(quiet{}), zk.WithDialer(dial))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	waitZKState(t, events, zk.StateHasSession)
	return conn, events
}

func waitZKState(t testing.TB, events <-chan zk.Event, want zk.State) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Type == zk.EventSession && ev.State == want {
				return
			}
		case <-deadline:
			t.Fatalf("no session state %v", want)
		}
	}
}

func waitEvent(t testing.TB, ch <-chan zk.Event, what string) zk.Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no event", what)
	}
	return zk.Event{}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

var open = zk.WorldACL(zk.PermAll)

func TestZKBasicOperations(t *testing.T) {
	zc := newZKCluster(t, 3)
	conn, _ := connect(t, zc.addrs, 5*time.Second)
	mustS := must[string](t)
	if p := mustS(conn.Create("/app", []byte("v1"), 0, open)); p != "/app" {
		t.Fatalf("create: %q", p)
	}
	if _, err := conn.Create("/app", nil, 0, open); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := conn.Create("/missing/child", nil, 0, open); !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("create without parent: %v", err)
	}
	data, st, err := conn.Get("/app")
	if err != nil || string(data) != "v1" || st.Version != 0 || st.DataLength != 2 {
		t.Fatalf("get: %q %+v %v", data, st, err)
	}
	st, err = conn.Set("/app", []byte("v2"), 0)
	if err != nil || st.Version != 1 {
		t.Fatalf("set: %+v %v", st, err)
	}
	if _, err := conn.Set("/app", []byte("v3"), 0); !errors.Is(err, zk.ErrBadVersion) {
		t.Fatalf("stale set: %v", err)
	}
	seq1 := mustS(conn.Create("/app/job-", nil, zk.FlagSequence, open))
	seq2 := mustS(conn.Create("/app/job-", nil, zk.FlagSequence|zk.FlagEphemeral, open))
	if seq1 != "/app/job-0000000000" || seq2 != "/app/job-0000000001" {
		t.Fatalf("sequential: %s %s", seq1, seq2)
	}
	names, st, err := conn.Children("/app")
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{"job-0000000000", "job-0000000001"}) || st.NumChildren != 2 {
		t.Fatalf("children: %v %+v %v", names, st, err)
	}
	ok, st, err := conn.Exists("/app/job-0000000001")
	if err != nil || !ok || st.EphemeralOwner != conn.SessionID() {
		t.Fatalf("exists: %v %+v %v (session %x)", ok, st, err, conn.SessionID())
	}
	if ok, _, err := conn.Exists("/nope"); ok || err != nil {
		t.Fatalf("exists on a missing node: %v %v", ok, err)
	}
	if err := conn.Delete("/app", -1); !errors.Is(err, zk.ErrNotEmpty) {
		t.Fatalf("delete non-empty: %v", err)
	}
	if err := conn.Delete("/app/job-0000000000", 5); !errors.Is(err, zk.ErrBadVersion) {
		t.Fatalf("delete with wrong version: %v", err)
	}
	if err := conn.Delete("/app/job-0000000000", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Sync("/app"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create("/app/job-0000000001/x", nil, 0, open); !errors.Is(err, zk.ErrNoChildrenForEphemerals) {
		t.Fatalf("child of an ephemeral: %v", err)
	}
	if _, err := conn.Create("bad", nil, 0, open); !errors.Is(err, zk.ErrInvalidPath) && !errors.Is(err, zk.ErrBadArguments) {
		t.Fatalf("bad path: %v", err)
	}
}

func TestZKACLs(t *testing.T) {
	zc := newZKCluster(t, 3)
	owner, _ := connect(t, zc.addrs, 5*time.Second)
	if err := owner.AddAuth("digest", []byte("alice:secret")); err != nil {
		t.Fatal(err)
	}
	acl := zk.DigestACL(zk.PermAll, "alice", "secret")
	if _, err := owner.Create("/private", []byte("p"), 0, acl); err != nil {
		t.Fatal(err)
	}
	got, _, err := owner.GetACL("/private")
	if err != nil || len(got) != 1 || got[0].Scheme != "digest" || got[0].ID != acl[0].ID {
		t.Fatalf("getACL: %+v %v", got, err)
	}
	other, _ := connect(t, zc.addrs, 5*time.Second)
	if _, _, err := other.Get("/private"); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("read without auth: %v", err)
	}
	if _, err := other.Set("/private", nil, -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("write without auth: %v", err)
	}
	if _, err := owner.SetACL("/private", zk.WorldACL(zk.PermRead), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Sync("/private"); err != nil { // other may be on another server
		t.Fatal(err)
	}
	if _, _, err := other.Get("/private"); err != nil {
		t.Fatalf("read after opening the ACL: %v", err)
	}
	if _, err := other.Set("/private", nil, -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("write to a read-only node: %v", err)
	}
	if _, err := owner.SetACL("/private", []zk.ACL{{Perms: zk.PermAll, Scheme: "nope", ID: "x"}}, -1); !errors.Is(err, zk.ErrInvalidACL) {
		t.Fatalf("invalid ACL: %v", err)
	}
}

// The operator's super digest reads and writes past any ACL.
func TestZKSuperDigest(t *testing.T) {
	super := grove.DigestID("super", "operator")
	zc := newZKCluster(t, 1, coretest.WithConfig(func(c *core.Config) { c.SuperDigest = super }))
	owner, _ := connect(t, zc.addrs, 5*time.Second)
	if err := owner.AddAuth("digest", []byte("alice:secret")); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Create("/locked", []byte("l"), 0, zk.DigestACL(zk.PermAll, "alice", "secret")); err != nil {
		t.Fatal(err)
	}
	op, _ := connect(t, zc.addrs, 5*time.Second)
	if _, _, err := op.Get("/locked"); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("before super auth: %v", err)
	}
	if err := op.AddAuth("digest", []byte("super:operator")); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Set("/locked", []byte("fixed"), -1); err != nil {
		t.Fatalf("super write: %v", err)
	}
}

func TestZKWatches(t *testing.T) {
	zc := newZKCluster(t, 3)
	conn, _ := connect(t, zc.addrs[:1], 5*time.Second)
	writer, _ := connect(t, zc.addrs[1:2], 5*time.Second)
	if _, err := conn.Create("/w", []byte("0"), 0, open); err != nil {
		t.Fatal(err)
	}
	_, _, dataW := must3(t)(conn.GetW("/w"))
	_, _, childW := must3c(t)(conn.ChildrenW("/w"))
	ok, _, existW, err := conn.ExistsW("/w/new")
	if err != nil || ok {
		t.Fatalf("existsW: %v %v", ok, err)
	}
	if _, err := writer.Set("/w", []byte("1"), -1); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, dataW, "data watch"); ev.Type != zk.EventNodeDataChanged || ev.Path != "/w" {
		t.Fatalf("data watch: %+v", ev)
	}
	if _, err := writer.Create("/w/new", nil, 0, open); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, existW, "exists watch"); ev.Type != zk.EventNodeCreated || ev.Path != "/w/new" {
		t.Fatalf("exists watch: %+v", ev)
	}
	if ev := waitEvent(t, childW, "child watch"); ev.Type != zk.EventNodeChildrenChanged || ev.Path != "/w" {
		t.Fatalf("child watch: %+v", ev)
	}
}

func TestZKMulti(t *testing.T) {
	zc := newZKCluster(t, 3)
	conn, _ := connect(t, zc.addrs, 5*time.Second)
	res, err := conn.Multi(
		&zk.CreateRequest{Path: "/m", Data: []byte("a"), Acl: open},
		&zk.CreateRequest{Path: "/m/1", Acl: open},
		&zk.SetDataRequest{Path: "/m", Data: []byte("b"), Version: 0},
		&zk.CheckVersionRequest{Path: "/m", Version: 1},
	)
	if err != nil || len(res) != 4 || res[0].String != "/m" || res[1].String != "/m/1" || res[2].Stat == nil || res[2].Stat.Version != 1 {
		t.Fatalf("multi: %+v %v", res, err)
	}
	// A failing op rolls the whole multi back, with ZooKeeper's layout.
	res, err = conn.Multi(
		&zk.CreateRequest{Path: "/m/2", Acl: open},
		&zk.DeleteRequest{Path: "/m/1", Version: 7},
		&zk.CreateRequest{Path: "/m/3", Acl: open},
	)
	if err == nil {
		t.Fatal("a failing multi succeeded")
	}
	if len(res) != 3 || res[0].Error != nil || !errors.Is(res[1].Error, zk.ErrBadVersion) || !errors.Is(res[2].Error, zk.ErrAPIError) && res[2].Error == nil {
		t.Fatalf("failed multi results: %+v (%v)", res, err)
	}
	for _, p := range []string{"/m/2", "/m/3"} {
		if ok, _, _ := conn.Exists(p); ok {
			t.Fatalf("%s exists after a rolled back multi", p)
		}
	}
	if ok, _, _ := conn.Exists("/m/1"); !ok {
		t.Fatal("/m/1 deleted by a rolled back multi")
	}
}

// Emptied containers and idle TTL nodes are reaped. In a synctest bubble
// over in-memory ZooKeeper ports (the reaper runs on the fake clock).
func TestZKContainersAndTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		zc := newMemZKCluster(t, 3)
		conn, _ := connectVia(t, zc.addrs, 5*time.Second, zc.dial)
		if _, err := conn.CreateContainer("/box", nil, zk.FlagContainer, open); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Create("/box/item", nil, 0, open); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.CreateTTL("/lease", nil, zk.FlagTTL, open, 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := conn.Delete("/box/item", -1); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for _, p := range []string{"/box", "/lease"} {
			for {
				ok, _, err := conn.Exists(p)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s was not reaped", p)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
}

// A client whose server is killed moves to another; its watches move too,
// and changes made while it was away fire once.
func TestZKWatchesSurviveServerKill(t *testing.T) {
	zc := newZKCluster(t, 3)
	conn, _ := connect(t, zc.addrs, 5*time.Second)
	idx := slices.Index(zc.addrs, conn.Server())
	if idx < 0 {
		t.Fatalf("connected to %q, not one of %v", conn.Server(), zc.addrs)
	}
	victim := zc.c.Nodes()[idx]
	writer, _ := connect(t, []string{zc.addrs[(idx+1)%3]}, 5*time.Second)
	if _, err := conn.Create("/k", []byte("0"), 0, open); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create("/k/eph", nil, zk.FlagEphemeral, open); err != nil {
		t.Fatal(err)
	}
	_, _, dataW := must3(t)(conn.GetW("/k"))
	_, _, existW, _ := conn.ExistsW("/k/later")
	_, _, quietW := must3(t)(conn.GetW("/k/eph"))

	// Kill the client's server; go-zookeeper then tries the others.
	_ = zc.srvs[idx].Close()
	zc.c.Crash(victim.ID())
	if _, err := writer.Set("/k", []byte("1"), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Create("/k/later", nil, 0, open); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, dataW, "data watch"); ev.Type != zk.EventNodeDataChanged {
		t.Fatalf("data watch: %+v", ev)
	}
	if ev := waitEvent(t, existW, "exists watch"); ev.Type != zk.EventNodeCreated {
		t.Fatalf("exists watch: %+v", ev)
	}
	// The untouched node's watch was carried over and fires for a change
	// after the move.
	if _, err := writer.Set("/k/eph", []byte("x"), -1); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, quietW, "carried watch"); ev.Type != zk.EventNodeDataChanged {
		t.Fatalf("carried watch: %+v", ev)
	}
	// The session (and its ephemeral) survived the move.
	if ok, _, err := writer.Exists("/k/eph"); !ok || err != nil {
		t.Fatalf("ephemeral after the move: %v %v", ok, err)
	}
}

// netCtl lets a test cut a go-zookeeper client off.
type netCtl struct {
	base    zk.Dialer
	mu      sync.Mutex
	blocked bool
	conns   []net.Conn
}

func (n *netCtl) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	n.mu.Lock()
	blocked := n.blocked
	n.mu.Unlock()
	if blocked {
		return nil, errors.New("netctl: blocked")
	}
	c, err := n.base(network, addr, timeout)
	if err == nil {
		n.mu.Lock()
		n.conns = append(n.conns, c)
		n.mu.Unlock()
	}
	return c, err
}

func (n *netCtl) cut(blocked bool) {
	n.mu.Lock()
	n.blocked = blocked
	conns := n.conns
	n.conns = nil
	n.mu.Unlock()
	if blocked {
		for _, c := range conns {
			_ = c.Close()
		}
	}
}

// A silent client's session expires: its ephemerals vanish on every node,
// and when it comes back it is told the session expired. In a synctest
// bubble over in-memory ZooKeeper ports.
func TestZKSessionExpiryRemovesEphemerals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		zc := newMemZKCluster(t, 3)
		ctl := &netCtl{base: zc.dial}
		conn, events := connectVia(t, zc.addrs, time.Second, ctl.dial)
		if _, err := conn.Create("/e", nil, zk.FlagEphemeral, open); err != nil {
			t.Fatal(err)
		}
		ctl.cut(true)
		deadline := time.Now().Add(30 * time.Second)
		for _, n := range zc.c.Nodes() {
			for {
				_, _, err := n.Exists(context.Background(), core.Read{}, "/e")
				if errors.Is(err, grove.ErrNoNode) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %x kept the ephemeral of an expired session", n.ID())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		ctl.cut(false)
		waitZKState(t, events, zk.StateExpired)
	})
}

func TestZKFourLetterWords(t *testing.T) {
	zc := newZKCluster(t, 3)
	conn, _ := connect(t, zc.addrs[:1], 5*time.Second)
	if ok := zk.FLWRuok(zc.addrs, 5*time.Second); !slices.Equal(ok, []bool{true, true, true}) {
		t.Fatalf("ruok: %v", ok)
	}
	stats, ok := zk.FLWSrvr(zc.addrs, 5*time.Second)
	if !ok {
		t.Fatalf("srvr: %+v", stats)
	}
	modes := map[zk.Mode]int{}
	for _, s := range stats {
		if s.Error != nil {
			t.Fatalf("srvr: %v", s.Error)
		}
		modes[s.Mode]++
	}
	if modes[zk.ModeLeader] != 1 || modes[zk.ModeFollower] != 2 {
		t.Fatalf("srvr modes: %v", modes)
	}
	cons, ok := zk.FLWCons(zc.addrs[:1], 5*time.Second)
	found := false
	for _, c := range cons[0].Clients {
		found = found || c.SessionID == conn.SessionID()
	}
	if !ok || !found {
		t.Fatalf("cons does not list session %x: %+v", conn.SessionID(), cons[0])
	}
}

func must3(t testing.TB) func([]byte, *zk.Stat, <-chan zk.Event, error) ([]byte, *zk.Stat, <-chan zk.Event) {
	return func(d []byte, s *zk.Stat, ch <-chan zk.Event, err error) ([]byte, *zk.Stat, <-chan zk.Event) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return d, s, ch
	}
}

func must3c(t testing.TB) func([]string, *zk.Stat, <-chan zk.Event, error) ([]string, *zk.Stat, <-chan zk.Event) {
	return func(d []string, s *zk.Stat, ch <-chan zk.Event, err error) ([]string, *zk.Stat, <-chan zk.Event) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return d, s, ch
	}
}

// TestZKTraceMaskWords checks stmk (a word followed by an 8-byte mask) and
// gtmk, which reports the mask set.
func TestZKTraceMaskWords(t *testing.T) {
	zc := newZKCluster(t, 1)
	if got := fourLetter(t, zc.addrs[0], []byte("gtmk")); got != "306" {
		t.Fatalf("gtmk: %q, want ZooKeeper's default 306", got)
	}
	if got := fourLetter(t, zc.addrs[0], append([]byte("stmk"), 0, 0, 0, 0, 0, 0, 1, 2)); got != "258" {
		t.Fatalf("stmk 258: %q", got)
	}
	if got := fourLetter(t, zc.addrs[0], []byte("gtmk")); got != "258" {
		t.Fatalf("gtmk after stmk: %q", got)
	}
}

// fourLetter sends raw bytes and returns the whole answer.
func fourLetter(t *testing.T, addr string, msg []byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestZKConfigNodeListsMembers checks that /zookeeper/config carries the
// cluster's members in ZooKeeper's dynamic-configuration format, readable
// by anyone, written by no one.
func TestZKConfigNodeListsMembers(t *testing.T) {
	zc := newZKCluster(t, 3)
	conn, _ := connect(t, zc.addrs[1:2], 5*time.Second)
	data, st, err := conn.Get("/zookeeper/config")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	want := []string{"server.1=mem-1:0:0:participant", "server.2=mem-2:0:0:participant", "server.3=mem-3:0:0:participant"}
	if len(lines) != 4 || !slices.Equal(lines[:3], want) || !strings.HasPrefix(lines[3], "version=") {
		t.Fatalf("/zookeeper/config:\n%s", data)
	}
	if st.Aversion != -1 {
		t.Fatalf("aversion %d, want -1 as ZooKeeper shows it", st.Aversion)
	}
	if _, err := conn.Set("/zookeeper/config", []byte("x"), -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("set /zookeeper/config: %v, want NoAuth", err)
	}
}
