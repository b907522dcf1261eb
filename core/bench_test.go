package core_test

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
)

// The benchmarks run b.RunParallel with b.SetParallelism(benchParallelism),
// so C = benchParallelism * GOMAXPROCS goroutines are in flight: 64 on a
// 2-core machine. Each writing goroutine owns its own session (sequence
// numbers are per session). allocs/op and B/op count every allocation in
// the process while the timer runs, so they include the node's own work
// (raft, bbolt, apply, the other nodes of a cluster), not only the caller's.
const benchParallelism = 32

// benchValue is the data of every znode a benchmark writes or reads.
var benchValue = bytes.Repeat([]byte("v"), 128)

// benchSessionTimeout outlives any benchmark round; writes touch it anyway.
const benchSessionTimeout = 30 * time.Second

// benchConcurrency is the number of goroutines b.RunParallel starts.
func benchConcurrency() int { return benchParallelism * runtime.GOMAXPROCS(0) }

// benchSingle starts a one-node cluster with the production defaults
// (50ms ticks) and closes it when the benchmark round ends.
func benchSingle(b *testing.B, noSync bool) *core.Node {
	b.Helper()
	cfg := core.DefaultConfig()
	cfg.ID = 1
	cfg.DataDir = b.TempDir()
	cfg.Peers = []core.Peer{{ID: 1}}
	cfg.NoSync = noSync
	n, err := core.StartNode(b.Context(), cfg)
	if err != nil {
		b.Fatalf("start node: %v", err)
	}
	b.Cleanup(func() {
		if err := n.Close(); err != nil {
			b.Errorf("close node: %v", err)
		}
	})
	return n
}

// benchThree starts a 3-node in-process cluster (memtransport, coretest's
// 10ms ticks) with fsync as asked, and returns its leader and a follower
// that knows the leader. coretest closes it when the round ends.
func benchThree(b *testing.B, noSync bool) (leader, follower *core.Node) {
	b.Helper()
	c := coretest.NewCluster(b, 3, coretest.WithConfig(func(cfg *core.Config) { cfg.NoSync = noSync }))
	ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
	defer cancel()
	leader = c.WaitLeader(ctx)
	for {
		for _, nd := range c.Nodes() {
			if nd != leader && nd.Leader() == leader.ID() {
				return leader, nd
			}
		}
		select {
		case <-ctx.Done():
			b.Fatalf("no follower knows leader %d", leader.ID())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// benchTarget is where a benchmark sends its requests.
type benchTarget struct {
	name   string
	noSync bool
	serial bool // one session, one request at a time (C=1), for writes
	start  func(b *testing.B, noSync bool) *core.Node
}

// singleTargets and threeTargets are the sub-benchmarks of the single-node
// and 3-node write benchmarks: fsync on (the real cost) and off. The
// single-node ones also run serially (C=1) to show one request's latency
// without group commit.
func singleTargets() []benchTarget {
	start := benchSingle
	return []benchTarget{
		{name: "fsync", start: start},
		{name: "NoSync", noSync: true, start: start},
		{name: "serial/fsync", serial: true, start: start},
		{name: "serial/NoSync", serial: true, noSync: true, start: start},
	}
}

func threeTargets() []benchTarget {
	leader := func(b *testing.B, noSync bool) *core.Node {
		l, _ := benchThree(b, noSync)
		return l
	}
	follower := func(b *testing.B, noSync bool) *core.Node {
		_, f := benchThree(b, noSync)
		return f
	}
	return []benchTarget{
		{name: "leader/fsync", start: leader},
		{name: "leader/NoSync", noSync: true, start: leader},
		{name: "follower/fsync", start: follower},
		{name: "follower/NoSync", noSync: true, start: follower},
		{name: "leader/serial/fsync", serial: true, start: leader},
		{name: "follower/serial/fsync", serial: true, start: follower},
	}
}

// benchSession opens a session on n for a benchmark.
func benchSession(b *testing.B, n *core.Node) *session {
	b.Helper()
	info, err := n.CreateSession(b.Context(), benchSessionTimeout)
	if err != nil {
		b.Fatalf("create session: %v", err)
	}
	return &session{n: n, id: info.ID}
}

// benchCreate creates path with benchValue through s, failing the round on
// any error.
func benchCreate(b *testing.B, s *session, path string) {
	b.Helper()
	if _, err := s.create(b.Context(), path, benchValue, grove.ModePersistent); err != nil {
		b.Fatalf("create %s: %v", path, err)
	}
}

// reportOps adds the ops/s metric: completed operations per wall second.
func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// leaderTerm returns the term of n's view of the cluster, to notice an
// election during a run.
func leaderTerm(n *core.Node) (uint64, uint64) {
	st := n.Status()
	return st.Leader, st.Term
}

// runWrites runs write through n from C goroutines, each with its own
// session, or from the benchmark goroutine alone if serial. prepare runs
// once per session before the timer starts.
func runWrites(b *testing.B, n *core.Node, serial bool, prepare func(s *session, g int), write func(ctx context.Context, s *session, g, i int) error) {
	b.Helper()
	benchCreate(b, benchSession(b, n), "/bench")
	if serial {
		s := benchSession(b, n)
		if prepare != nil {
			prepare(s, 0)
		}
		ctx := b.Context()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := write(ctx, s, 0, i); err != nil {
				b.Fatalf("write: %v", err)
			}
			i++
		}
		reportOps(b)
		return
	}
	sessions := make([]*session, benchConcurrency())
	for g := range sessions {
		sessions[g] = benchSession(b, n)
		if prepare != nil {
			prepare(sessions[g], g)
		}
	}
	lead, term := leaderTerm(n)
	var next atomic.Int64
	ctx := b.Context()
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1) - 1)
		if g >= len(sessions) {
			b.Errorf("goroutine %d of %d: more goroutines than sessions", g, len(sessions))
			return
		}
		s := sessions[g]
		for i := 0; pb.Next(); i++ {
			if err := write(ctx, s, g, i); err != nil {
				b.Errorf("write: %v", err)
				return
			}
		}
	})
	b.StopTimer()
	reportOps(b)
	if l, t := leaderTerm(n); l != lead || t != term {
		b.Logf("leader changed during the run: %d (term %d) -> %d (term %d)", lead, term, l, t)
	}
}

// sessionNode is the znode of goroutine g: /bench/s<g>.
func sessionNode(g int) string { return "/bench/s" + strconv.Itoa(g) }

func benchCreates(b *testing.B, n *core.Node, serial bool) {
	runWrites(b, n, serial, nil, func(ctx context.Context, s *session, g, i int) error {
		path := sessionNode(g) + "-" + strconv.Itoa(i)
		_, err := s.create(ctx, path, benchValue, grove.ModePersistent)
		return err
	})
}

func benchSets(b *testing.B, n *core.Node, serial bool) {
	prepare := func(s *session, g int) { benchCreate(b, s, sessionNode(g)) }
	runWrites(b, n, serial, prepare, func(ctx context.Context, s *session, g, _ int) error {
		res, err := s.submit(ctx, core.Request{Op: core.OpSetData, Path: sessionNode(g), Data: benchValue, Version: -1})
		if err != nil {
			return err
		}
		return grove.CodeError(res.Code)
	})
}

func runTargets(b *testing.B, targets []benchTarget, fn func(b *testing.B, n *core.Node, serial bool)) {
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) { fn(b, tg.start(b, tg.noSync), tg.serial) })
	}
}

// BenchmarkSingleNodeCreate creates new znodes (128-byte data) on a one-node
// cluster from C sessions at once.
func BenchmarkSingleNodeCreate(b *testing.B) { runTargets(b, singleTargets(), benchCreates) }

// BenchmarkSingleNodeSet overwrites one znode per session (128-byte data)
// on a one-node cluster from C sessions at once.
func BenchmarkSingleNodeSet(b *testing.B) { runTargets(b, singleTargets(), benchSets) }

// BenchmarkThreeNodeCreate is BenchmarkSingleNodeCreate on a 3-node
// in-process cluster, writing through the leader or through a follower (which
// forwards proposals to the leader).
func BenchmarkThreeNodeCreate(b *testing.B) { runTargets(b, threeTargets(), benchCreates) }

// BenchmarkThreeNodeSet is BenchmarkSingleNodeSet on a 3-node in-process
// cluster, through the leader or a follower.
func BenchmarkThreeNodeSet(b *testing.B) { runTargets(b, threeTargets(), benchSets) }

// readTargets are the nodes the read benchmarks read from: a one-node
// cluster, and the leader and a follower of a 3-node cluster. fsync is on;
// only Sync and linearizable reads touch the disk (each Ready commits).
func readTargets() []benchTarget {
	three := threeTargets()
	return []benchTarget{
		{name: "single", start: benchSingle},
		{name: "three/leader", start: three[0].start},
		{name: "three/follower", start: three[2].start},
	}
}

// runReads writes /bench/get and then runs read from C goroutines.
func runReads(b *testing.B, n *core.Node, read func(ctx context.Context) error) {
	b.Helper()
	s := benchSession(b, n)
	benchCreate(b, s, "/bench")
	benchCreate(b, s, "/bench/get")
	if _, err := n.Sync(b.Context()); err != nil {
		b.Fatalf("sync: %v", err)
	}
	lead, term := leaderTerm(n)
	ctx := b.Context()
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := read(ctx); err != nil {
				b.Errorf("read: %v", err)
				return
			}
		}
	})
	b.StopTimer()
	reportOps(b)
	if l, t := leaderTerm(n); l != lead || t != term {
		b.Logf("leader changed during the run: %d (term %d) -> %d (term %d)", lead, term, l, t)
	}
}

func benchGet(r core.Read) func(b *testing.B, n *core.Node, serial bool) {
	return func(b *testing.B, n *core.Node, _ bool) {
		runReads(b, n, func(ctx context.Context) error {
			data, _, _, err := n.Get(ctx, r, "/bench/get")
			if err == nil && len(data) != len(benchValue) {
				b.Errorf("read %d bytes, want %d", len(data), len(benchValue))
			}
			return err
		})
	}
}

// BenchmarkGet reads one znode from the node's local state.
func BenchmarkGet(b *testing.B) { runTargets(b, readTargets(), benchGet(core.Read{})) }

// BenchmarkGetLinearizable reads one znode after a quorum barrier
// (Read.Linearizable). Concurrent barriers share one ReadIndex round.
func BenchmarkGetLinearizable(b *testing.B) {
	runTargets(b, readTargets(), benchGet(core.Read{Linearizable: true}))
}

// BenchmarkSync runs the quorum barrier alone.
func BenchmarkSync(b *testing.B) {
	runTargets(b, readTargets(), func(b *testing.B, n *core.Node, _ bool) {
		runReads(b, n, func(ctx context.Context) error {
			_, err := n.Sync(ctx)
			return err
		})
	})
}

// BenchmarkSetLargeTree overwrites one znode serially (C = 1, fsync on) on
// a one-node cluster whose tree holds 0 or 200,000 other znodes: a write's
// cost must not grow with the size of the tree.
func BenchmarkSetLargeTree(b *testing.B) {
	for _, size := range []int{0, 200_000} {
		b.Run("znodes="+strconv.Itoa(size), func(b *testing.B) {
			n := benchSingle(b, false)
			s := benchSession(b, n)
			benchCreate(b, s, "/bench")
			benchCreate(b, s, "/fill")
			const perMulti = 1000
			for i := 0; i < size; i += perMulti {
				ops := make([]grove.Op, 0, perMulti)
				for j := i; j < min(size, i+perMulti); j++ {
					ops = append(ops, grove.CreateOp("/fill/n"+strconv.Itoa(j), benchValue, grove.ModePersistent, grove.OpenACLUnsafe))
				}
				res, err := s.submit(b.Context(), core.Request{Op: core.OpMulti, Ops: ops})
				if err != nil || res.Code != grove.CodeOK {
					b.Fatalf("fill: %v %v", err, res.Code)
				}
			}
			benchCreate(b, s, "/bench/x")
			b.ReportAllocs()
			for b.Loop() {
				res, err := s.submit(b.Context(), core.Request{Op: core.OpSetData, Path: "/bench/x", Data: benchValue, Version: -1})
				if err != nil || res.Code != grove.CodeOK {
					b.Fatalf("set: %v %v", err, res.Code)
				}
			}
			reportOps(b)
		})
	}
}

// BenchmarkRestart measures a one-node restart (StartNode to a first read
// of the last write) of a data dir holding 200,000 znodes written one
// entry each, as a loaded server's is: the state file is opened and
// checked, and the log read back.
func BenchmarkRestart(b *testing.B) {
	const size = 200_000
	cfg := core.DefaultConfig()
	cfg.ID = 1
	cfg.DataDir = b.TempDir()
	cfg.Peers = []core.Peer{{ID: 1}}
	cfg.NoSync = true // the load only; a restart reads what is there
	n, err := core.StartNode(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	s := benchSession(b, n)
	benchCreate(b, s, "/fill")
	const writers = 64
	var next atomic.Int64
	errc := make(chan error, writers)
	for range writers {
		ws := benchSession(b, n)
		go func() {
			for i := next.Add(1); i <= size; i = next.Add(1) {
				if _, err := ws.create(b.Context(), "/fill/n"+strconv.FormatInt(i, 10), benchValue, grove.ModePersistent); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range writers {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		b.Fatal(err)
	}
	cfg.Peers = nil
	b.ReportAllocs()
	for b.Loop() {
		n, err := core.StartNode(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := n.Get(b.Context(), core.Read{}, "/fill/n"+strconv.Itoa(size)); err != nil {
			b.Fatal(err)
		}
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWideParent creates and deletes a child with a 1,000-byte name
// (one op is both writes; C = 1, fsync on, one node) under a parent that
// holds 0 or 5,000 such children: a write's cost must not grow with the
// parent's width (issue 12; the harness's scale-wide workload).
func BenchmarkWideParent(b *testing.B) {
	name := func(tag string) string { return strings.Repeat("w", 1000-len(tag)) + tag }
	for _, width := range []int{0, 5000} {
		b.Run("children="+strconv.Itoa(width), func(b *testing.B) {
			n := benchSingle(b, false)
			s := benchSession(b, n)
			benchCreate(b, s, "/wide")
			const perMulti = 200
			for i := 0; i < width; i += perMulti {
				ops := make([]grove.Op, 0, perMulti)
				for j := i; j < min(width, i+perMulti); j++ {
					ops = append(ops, grove.CreateOp("/wide/"+name(strconv.Itoa(j)), nil, grove.ModePersistent, grove.OpenACLUnsafe))
				}
				res, err := s.submit(b.Context(), core.Request{Op: core.OpMulti, Ops: ops})
				if err != nil || res.Code != grove.CodeOK {
					b.Fatalf("fill: %v %v", err, res.Code)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := "/wide/" + name("x"+strconv.Itoa(i))
				i++
				res, err := s.submit(b.Context(), core.Request{Op: core.OpCreate, Path: p, ACL: grove.OpenACLUnsafe})
				if err != nil || res.Code != grove.CodeOK {
					b.Fatalf("create: %v %v", err, res.Code)
				}
				res, err = s.submit(b.Context(), core.Request{Op: core.OpDelete, Path: p, Version: -1})
				if err != nil || res.Code != grove.CodeOK {
					b.Fatalf("delete: %v %v", err, res.Code)
				}
			}
			reportOps(b)
		})
	}
}
