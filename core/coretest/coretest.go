// Package coretest runs in-process Grove clusters for tests: nodes over an
// in-memory transport (package memtransport) with hooks to partition, drop
// and delay messages, crash a node (stop it without any goodbye) and restart
// it from the same data dir, and wait for a leader or for convergence.
//
// # Usage
//
//	func TestSomething(t *testing.T) {
//		c := coretest.NewCluster(t, 3)       // closed by t.Cleanup
//		leader := c.WaitLeader(t.Context())  // never assume which node
//		...
//		c.Crash(leader.ID())
//		c.Restart(leader.ID())
//		c.WaitConverged(t.Context())         // equal digests everywhere
//	}
package coretest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/memtransport"
)

// Option adjusts every node's Config before start.
type Option func(*core.Config)

// WithConfig applies fn to each node's Config.
func WithConfig(fn func(*core.Config)) Option { return Option(fn) }

// Cluster is a set of in-process nodes with IDs 1..n.
type Cluster struct {
	t   testing.TB
	Net *memtransport.Network

	// mu guards the fields below it.
	mu    sync.Mutex
	nodes map[uint64]*core.Node
	cfgs  map[uint64]core.Config
}

// FastConfig returns the timing used by test clusters: 10ms ticks, an
// election after 10 silent ticks, fsync off unless GROVE_TEST_FSYNC=1.
func FastConfig() core.Config {
	cfg := core.DefaultConfig()
	cfg.TickInterval = 10 * time.Millisecond
	cfg.ElectionTicks = 10
	cfg.HeartbeatTicks = 1
	cfg.MinSessionTimeout = 200 * time.Millisecond
	cfg.ReapInterval = 50 * time.Millisecond
	cfg.NoSync = os.Getenv("GROVE_TEST_FSYNC") != "1"
	return cfg
}

// NewCluster starts n nodes bootstrapped as one cluster and registers their
// Close with t.Cleanup.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Net: memtransport.NewNetwork(), nodes: map[uint64]*core.Node{}, cfgs: map[uint64]core.Config{}}
	base := t.TempDir()
	peers := make([]core.Peer, n)
	for i := range peers {
		peers[i] = core.Peer{ID: uint64(i + 1), Addr: fmt.Sprintf("mem-%d", i+1)}
	}
	for _, p := range peers {
		cfg := FastConfig()
		cfg.ID = p.ID
		cfg.DataDir = filepath.Join(base, fmt.Sprintf("node%d", p.ID))
		cfg.Peers = peers
		if testing.Verbose() && os.Getenv("GROVE_TEST_LOG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		for _, o := range opts {
			o(&cfg)
		}
		c.cfgs[p.ID] = cfg
	}
	for _, p := range peers {
		c.start(p.ID)
	}
	t.Cleanup(c.Close)
	return c
}

func (c *Cluster) start(id uint64) *core.Node {
	c.t.Helper()
	c.mu.Lock()
	cfg := c.cfgs[id]
	c.mu.Unlock()
	cfg.Transport = c.Net.Transport(id)
	nd, err := core.StartNode(context.Background(), cfg)
	if err != nil {
		c.t.Fatalf("coretest: start node %d: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id] = nd
	c.mu.Unlock()
	return nd
}

// Node returns the running node with id, or nil if it is crashed.
func (c *Cluster) Node(id uint64) *core.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Nodes returns the running nodes.
func (c *Cluster) Nodes() []*core.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*core.Node, 0, len(c.nodes))
	for id := uint64(1); id <= uint64(len(c.cfgs)); id++ {
		if nd := c.nodes[id]; nd != nil {
			out = append(out, nd)
		}
	}
	return out
}

// IDs returns every node id, running or not.
func (c *Cluster) IDs() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]uint64, 0, len(c.cfgs))
	for id := uint64(1); id <= uint64(len(c.cfgs)); id++ {
		ids = append(ids, id)
	}
	return ids
}

// Crash stops node id at once, as a kill would: no goodbye to the cluster.
// Everything it acknowledged is on disk (each Ready commits with fsync).
func (c *Cluster) Crash(id uint64) {
	c.t.Helper()
	c.mu.Lock()
	nd := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if nd != nil {
		_ = nd.Close()
	}
}

// Restart starts a crashed node again from its data dir.
func (c *Cluster) Restart(id uint64) *core.Node {
	c.t.Helper()
	return c.start(id)
}

// WaitLeader waits until the running nodes agree on a running leader and
// returns it. It fails the test when ctx ends first.
func (c *Cluster) WaitLeader(ctx context.Context) *core.Node {
	c.t.Helper()
	nd, err := c.AwaitLeader(ctx)
	if err != nil {
		c.t.Fatalf("coretest: %v", err)
	}
	return nd
}

// AwaitLeader is WaitLeader returning an error instead of failing the test,
// for use off the test goroutine.
func (c *Cluster) AwaitLeader(ctx context.Context) (*core.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if nd := c.leader(); nd != nil {
			return nd, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// leader returns the leader if a majority of running nodes agree on it.
func (c *Cluster) leader() *core.Node {
	nodes := c.Nodes()
	votes := map[uint64]int{}
	for _, nd := range nodes {
		if l := nd.Leader(); l != 0 {
			votes[l]++
		}
	}
	for id, v := range votes {
		if v*2 > len(c.IDs()) {
			if nd := c.Node(id); nd != nil && nd.IsLeader() {
				return nd
			}
		}
	}
	return nil
}

// WaitConverged waits until every running node has applied the same index
// and holds the same state digest, and returns that digest.
func (c *Cluster) WaitConverged(ctx context.Context) [32]byte {
	c.t.Helper()
	d, err := c.AwaitConverged(ctx)
	if err != nil {
		c.t.Fatalf("coretest: %v", err)
	}
	return d
}

// AwaitConverged is WaitConverged returning an error.
func (c *Cluster) AwaitConverged(ctx context.Context) ([32]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last string
	for {
		d, ok, why := c.converged()
		if ok {
			return d, nil
		}
		last = why
		select {
		case <-ctx.Done():
			return [32]byte{}, fmt.Errorf("nodes did not converge: %s: %w", last, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *Cluster) converged() ([32]byte, bool, string) {
	var first [32]byte
	var firstApplied uint64
	for i, nd := range c.Nodes() {
		d, applied, err := nd.Digest()
		if err != nil {
			return first, false, err.Error()
		}
		if i == 0 {
			first, firstApplied = d, applied
			continue
		}
		if applied != firstApplied || d != first {
			return first, false, fmt.Sprintf("node %d at %d (%x) vs %d (%x)", nd.ID(), applied, d[:4], firstApplied, first[:4])
		}
	}
	return first, true, ""
}

// Close stops every node. Idempotent.
func (c *Cluster) Close() {
	c.mu.Lock()
	nodes := c.nodes
	c.nodes = map[uint64]*core.Node{}
	c.mu.Unlock()
	for _, nd := range nodes {
		if err := nd.Close(); err != nil {
			c.t.Errorf("coretest: close node %d: %v", nd.ID(), err)
		}
	}
}

// AddNode starts a new node with the next free id and an empty data dir,
// has the leader add it as a learner and, unless learner is true, promotes
// it to voter once it has caught up. It returns the new node.
func (c *Cluster) AddNode(ctx context.Context, learner bool) (*core.Node, error) {
	c.mu.Lock()
	id := uint64(len(c.cfgs) + 1)
	var base core.Config
	for _, cfg := range c.cfgs {
		base = cfg
		break
	}
	cfg := base
	cfg.ID = id
	cfg.Peers = nil
	cfg.DataDir = filepath.Join(filepath.Dir(base.DataDir), fmt.Sprintf("node%d", id))
	c.cfgs[id] = cfg
	c.mu.Unlock()
	nd := c.start(id)
	leader, err := c.AwaitLeader(ctx)
	if err != nil {
		return nil, err
	}
	if err := leader.AddLearner(ctx, id, fmt.Sprintf("mem-%d", id)); err != nil {
		return nil, err
	}
	for nd.AppliedIndex() < leader.AppliedIndex() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	if !learner {
		if err := leader.AddVoter(ctx, id, fmt.Sprintf("mem-%d", id)); err != nil {
			return nil, err
		}
	}
	return nd, nil
}

// Remove has the leader remove node id from the configuration and stops
// the node.
func (c *Cluster) Remove(ctx context.Context, id uint64) error {
	leader, err := c.AwaitLeader(ctx)
	if err != nil {
		return err
	}
	if err := leader.RemoveMember(ctx, id); err != nil {
		return err
	}
	c.Crash(id)
	return nil
}

// WaitFollower waits for a leader and returns a running node that is not
// it.
func (c *Cluster) WaitFollower(ctx context.Context) *core.Node {
	c.t.Helper()
	leader := c.WaitLeader(ctx)
	for _, nd := range c.Nodes() {
		if nd != leader {
			return nd
		}
	}
	c.t.Fatal("coretest: no follower running")
	return nil
}
