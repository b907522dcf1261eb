package core_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/fsm"
	"github.com/grovekit/grove/transport"
)

// The tests here run a 3-node cluster over the real TCP transport (package
// transport) on loopback, in-process, with fsync on: a follower is stopped,
// the leader takes enough data to grow its data file to a target size and
// truncates its log far past the follower, and the follower, restarted,
// must catch up through a streamed bbolt snapshot.
//
// TestBigSnapshotCatchUp/small always runs (CI): ~24 MB, correctness only.
// TestBigSnapshotCatchUp/big runs with GROVE_BIG_SNAPSHOT_MB=<size> and
// reports the transfer rate and the leader's write latencies before and
// during the transfer (run it without -race; see docs/performance-cluster.md):
//
//	GROVE_BIG_SNAPSHOT_MB=300 go test -run 'BigSnapshot/big' -v -timeout 30m ./core/
//
// Knobs of the big mode (all optional):
//
//	GROVE_BIG_SNAPSHOT_ENTRIES=N         SnapshotEntries (default 2000; CatchUpEntries N/4)
//	GROVE_BIG_SNAPSHOT_LOAD=N            N bulk sessions keep writing during the catch-up
//	GROVE_BIG_SNAPSHOT_TIMEOUT=D         catch-up deadline (default 2m)
//	GROVE_BIG_SNAPSHOT_FOLLOWER_DIR=DIR  restarted follower's data dir under DIR (e.g. /dev/shm)
//	GROVE_BIG_SNAPSHOT_RATE_MBPS=N       cap snapshot streams at N MiB/s (test-side throttle)
//
// No assertion is made on timings.

// snapValueSize is the data of every bulk znode.
const snapValueSize = 4 << 10

// logCapture is a slog handler that keeps the records the tests look at
// (the snapshot and leadership events, warnings and errors) with the
// attributes added by Logger.With.
type logCapture struct {
	rec   *logRecords
	attrs []slog.Attr
}

type logRecords struct {
	mu   sync.Mutex
	list []capturedRecord
}

type capturedRecord struct {
	time  time.Time
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

func (r capturedRecord) String() string {
	s := fmt.Sprintf("%s %s %q", r.time.Format("15:04:05.000"), r.level, r.msg)
	keys := make([]string, 0, len(r.attrs))
	for k := range r.attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s += fmt.Sprintf(" %s=%v", k, r.attrs[k])
	}
	return s
}

var capturedMsgs = map[string]bool{
	"snapshot sent": true, "installed snapshot": true, "snapshot stream failed": true,
	"became leader": true, "transport: snapshot received": true,
}

func (h *logCapture) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn && !capturedMsgs[r.Message] && !strings.Contains(r.Message, "ignored snapshot") {
		return nil
	}
	c := capturedRecord{time: r.Time, level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	for _, a := range h.attrs {
		c.attrs[a.Key] = a.Value.Resolve()
	}
	r.Attrs(func(a slog.Attr) bool {
		c.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	h.rec.mu.Lock()
	h.rec.list = append(h.rec.list, c)
	h.rec.mu.Unlock()
	return nil
}

func (h *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	return &logCapture{rec: h.rec, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *logCapture) WithGroup(string) slog.Handler { return h }

func (r *logRecords) find(msg string) []capturedRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []capturedRecord
	for _, c := range r.list {
		if c.msg == msg {
			out = append(out, c)
		}
	}
	return out
}

func (r *logRecords) all() []capturedRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// persistLog is a core.Observer keeping every Ready commit of one node.
type persistLog struct {
	core.NopObserver
	mu  sync.Mutex
	end []time.Time
	dur []time.Duration
}

func (p *persistLog) ObservePersist(d time.Duration, _, _ int) {
	p.mu.Lock()
	p.end = append(p.end, time.Now())
	p.dur = append(p.dur, d)
	p.mu.Unlock()
}

// maxIn returns the longest Ready commit that ended in [from, to].
func (p *persistLog) maxIn(from, to time.Time) (time.Duration, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var m time.Duration
	k := 0
	for i, e := range p.end {
		if !e.Before(from) && !e.After(to) {
			m = max(m, p.dur[i])
			k++
		}
	}
	return m, k
}

// throttled caps the snapshot streams a TCP transport sends (a test-side
// stand-in for a rate limit the transport does not have).
type throttled struct {
	*transport.TCP
	rate float64 // bytes per second
}

func (t *throttled) SendSnapshot(ctx context.Context, to uint64, header []byte, body io.Reader) error {
	return t.TCP.SendSnapshot(ctx, to, header, &rateReader{r: body, rate: t.rate, start: time.Now()})
}

type rateReader struct {
	r     io.Reader
	rate  float64
	start time.Time
	n     int64
}

func (r *rateReader) Read(p []byte) (int, error) {
	if due := r.start.Add(time.Duration(float64(r.n) / r.rate * float64(time.Second))); time.Until(due) > 0 {
		time.Sleep(time.Until(due))
	}
	k, err := r.r.Read(p)
	r.n += int64(k)
	return k, err
}

// tcpCluster is three in-process nodes over TCP on loopback.
type tcpCluster struct {
	t     *testing.T
	logs  *logRecords
	peers []core.Peer
	cfgs  map[uint64]core.Config
	obs   map[uint64]*persistLog
	// snapRate, if positive, caps every snapshot stream sent, in bytes/s.
	snapRate float64

	mu    sync.Mutex
	nodes map[uint64]*core.Node
	trs   map[uint64]*transport.TCP
}

// newTCPCluster starts n nodes; snapRate, if positive, caps the snapshot
// streams they send (bytes/s); mod adjusts each node's Config.
func newTCPCluster(t *testing.T, n int, snapRate float64, mod func(*core.Config)) *tcpCluster {
	t.Helper()
	c := &tcpCluster{t: t, logs: &logRecords{}, cfgs: map[uint64]core.Config{}, obs: map[uint64]*persistLog{},
		nodes: map[uint64]*core.Node{}, trs: map[uint64]*transport.TCP{}, snapRate: snapRate}
	base := t.TempDir()
	// Listen first to learn the addresses, then configure the peers.
	lns := map[uint64]net.Listener{}
	for id := uint64(1); id <= uint64(n); id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id] = ln
		c.peers = append(c.peers, core.Peer{ID: id, Addr: ln.Addr().String()})
	}
	for _, p := range c.peers {
		cfg := core.DefaultConfig()
		cfg.ID, cfg.DataDir, cfg.Peers = p.ID, filepath.Join(base, fmt.Sprintf("node%d", p.ID)), c.peers
		cfg.Logger = slog.New(&logCapture{rec: c.logs})
		c.obs[p.ID] = &persistLog{}
		cfg.Observer = c.obs[p.ID]
		if mod != nil {
			mod(&cfg)
		}
		c.cfgs[p.ID] = cfg
	}
	t.Cleanup(c.close)
	for _, p := range c.peers {
		c.start(p.ID, lns[p.ID])
	}
	return c
}

// start starts node id with a fresh transport, on ln or else on the
// node's address.
func (c *tcpCluster) start(id uint64, ln net.Listener) *core.Node {
	c.t.Helper()
	cfg := c.cfgs[id]
	tc := transport.DefaultConfig()
	tc.ID, tc.Listener, tc.Logger = id, ln, cfg.Logger
	if ln == nil {
		tc.ListenAddr = c.peers[id-1].Addr
	}
	tr, err := transport.New(tc)
	if err != nil {
		c.t.Fatalf("transport %d: %v", id, err)
	}
	cfg.Transport = tr
	if c.snapRate > 0 {
		cfg.Transport = &throttled{TCP: tr, rate: c.snapRate}
	}
	nd, err := core.StartNode(context.Background(), cfg)
	if err != nil {
		_ = tr.Close()
		c.t.Fatalf("start node %d: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.trs[id] = nd, tr
	c.mu.Unlock()
	return nd
}

func (c *tcpCluster) node(id uint64) *core.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *tcpCluster) stop(id uint64) {
	c.t.Helper()
	c.mu.Lock()
	nd := c.nodes[id]
	delete(c.nodes, id)
	delete(c.trs, id)
	c.mu.Unlock()
	if err := nd.Close(); err != nil { // closes the transport too
		c.t.Errorf("close node %d: %v", id, err)
	}
}

func (c *tcpCluster) close() {
	c.mu.Lock()
	ids := make([]uint64, 0, len(c.nodes))
	for id := range c.nodes {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.stop(id)
	}
}

func (c *tcpCluster) waitLeader(ctx context.Context) *core.Node {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		c.mu.Lock()
		var lead *core.Node
		agree := 0
		for _, nd := range c.nodes {
			if nd.IsLeader() {
				lead = nd
			}
		}
		if lead != nil {
			for _, nd := range c.nodes {
				if nd.Leader() == lead.ID() {
					agree++
				}
			}
		}
		c.mu.Unlock()
		if lead != nil && agree*2 > len(c.peers) {
			return lead
		}
		select {
		case <-ctx.Done():
			c.t.Fatal("no leader")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitApplied waits until every running node has applied at least index.
func (c *tcpCluster) waitApplied(ctx context.Context, index uint64) {
	c.t.Helper()
	c.mu.Lock()
	nodes := make([]*core.Node, 0, len(c.nodes))
	for _, nd := range c.nodes {
		nodes = append(nodes, nd)
	}
	c.mu.Unlock()
	for _, nd := range nodes {
		if err := nd.WaitApplied(ctx, index); err != nil {
			c.t.Fatalf("node %d did not apply %d (at %d): %v", nd.ID(), index, nd.AppliedIndex(), err)
		}
	}
}

// checkConverged requires equal applied indexes and digests on every
// running node (no writes may be in flight).
func (c *tcpCluster) checkConverged(ctx context.Context) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var why string
		var first [32]byte
		var firstApplied uint64
		c.mu.Lock()
		i := 0
		for id := uint64(1); id <= uint64(len(c.peers)); id++ {
			nd := c.nodes[id]
			if nd == nil {
				continue
			}
			d, applied, err := nd.Digest()
			switch {
			case err != nil:
				why = err.Error()
			case i == 0:
				first, firstApplied = d, applied
			case applied != firstApplied || d != first:
				why = fmt.Sprintf("node %d at %d (%x) vs %d (%x)", id, applied, d[:4], firstApplied, first[:4])
			}
			i++
		}
		c.mu.Unlock()
		if why == "" {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.t.Fatalf("no convergence: %s", why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dataSize(nd *core.Node) int64 {
	var sz int64
	_ = nd.View(func(tx *bbolt.Tx) error { sz = tx.Size(); return nil })
	return sz
}

// bulkLoad writes znodes of snapValueSize bytes through nd from writers
// goroutines, each with its own session and window requests in flight
// (Begin in order, Wait in order), until done reports true (polled every
// 20ms). It returns the acknowledged paths.
func bulkLoad(ctx context.Context, nd *core.Node, prefix string, writers, window int, done func() bool) ([]string, error) {
	var (
		mu    sync.Mutex
		paths []string
		stop  atomic.Bool
		errs  = make(chan error, writers)
		wg    sync.WaitGroup
	)
	value := make([]byte, snapValueSize)
	_, _ = rand.Read(value)
	for w := range writers {
		wg.Go(func() {
			info, err := nd.CreateSession(ctx, time.Minute)
			if err != nil {
				errs <- err
				return
			}
			type inflight struct {
				p    *core.Pending
				path string
			}
			var q []inflight
			var seq uint64
			wait := func() error {
				res, err := q[0].p.Wait(ctx)
				if err == nil {
					err = grove.CodeError(res.Code)
				}
				if err != nil {
					return fmt.Errorf("write %s: %w", q[0].path, err)
				}
				mu.Lock()
				paths = append(paths, q[0].path)
				mu.Unlock()
				q = q[1:]
				return nil
			}
			for i := 0; !stop.Load(); i++ {
				seq++
				path := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				p, err := nd.Begin(ctx, &core.Request{Session: info.ID, Seq: seq, Op: core.OpCreate, Path: path,
					Data: value, ACL: grove.OpenACLUnsafe})
				if err != nil {
					errs <- err
					return
				}
				q = append(q, inflight{p, path})
				if len(q) >= window {
					if err := wait(); err != nil {
						errs <- err
						return
					}
				}
			}
			for len(q) > 0 {
				if err := wait(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var firstErr error
	for !stop.Load() {
		select {
		case <-ctx.Done():
			stop.Store(true)
		case firstErr = <-errs:
			stop.Store(true)
		case <-time.After(20 * time.Millisecond):
			if done() {
				stop.Store(true)
			}
		}
	}
	wg.Wait()
	close(errs)
	if firstErr == nil {
		firstErr = <-errs
	}
	if firstErr != nil {
		return nil, fmt.Errorf("bulk load: %w", firstErr)
	}
	return paths, nil
}

// latencySample is one write of the probe writer.
type latencySample struct {
	start time.Time
	took  time.Duration
	path  string
}

// probeWriter writes small znodes through nd one after another until stop
// closes, timing each write.
func probeWriter(ctx context.Context, nd *core.Node, stop <-chan struct{}) ([]latencySample, error) {
	info, err := nd.CreateSession(ctx, time.Minute)
	if err != nil {
		return nil, err
	}
	var out []latencySample
	for seq := uint64(1); ; seq++ {
		select {
		case <-stop:
			return out, nil
		default:
		}
		path := "/probe-" + strconv.FormatUint(seq, 10)
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := nd.Submit(wctx, &core.Request{Session: info.ID, Seq: seq, Op: core.OpCreate, Path: path,
			Data: []byte(path), ACL: grove.OpenACLUnsafe})
		cancel()
		if err == nil {
			err = grove.CodeError(res.Code)
		}
		if err != nil {
			return out, fmt.Errorf("probe write %s: %w", path, err)
		}
		out = append(out, latencySample{start: start, took: time.Since(start), path: path})
	}
}

// latStats summarises the probe writes that started in [from, to).
type latStats struct {
	n             int
	p50, p99, max time.Duration
	maxAt         time.Time
}

func summarize(s []latencySample, from, to time.Time) latStats {
	var d []time.Duration
	var st latStats
	for _, x := range s {
		if x.start.Before(from) || !x.start.Before(to) {
			continue
		}
		d = append(d, x.took)
		if x.took > st.max {
			st.max, st.maxAt = x.took, x.start
		}
	}
	if len(d) == 0 {
		return st
	}
	slices.Sort(d)
	st.n = len(d)
	st.p50 = d[len(d)/2]
	st.p99 = d[min(len(d)-1, int(math.Ceil(0.99*float64(len(d))))-1)]
	return st
}

func (s latStats) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", s.n, s.p50.Round(10*time.Microsecond), s.p99.Round(10*time.Microsecond), s.max.Round(10*time.Microsecond))
}

func TestBigSnapshotCatchUp(t *testing.T) {
	t.Run("small", func(t *testing.T) {
		if testing.Short() {
			t.Skip("writes ~24 MB with fsync")
		}
		// CatchUpEntries close to SnapshotEntries: the log keeps at least
		// 750 entries behind the applied index, far more than the probe
		// writes during a ~25 MB transfer, so one snapshot suffices even on
		// a slow CI machine (see the repeated snapshots of the big mode).
		runSnapshotCatchUp(t, catchUpRun{target: 24 << 20, snapEntries: 1000, catchUpEntries: 750, writers: 32, window: 4, quick: true})
	})
	t.Run("big", func(t *testing.T) {
		mb, _ := strconv.Atoi(os.Getenv("GROVE_BIG_SNAPSHOT_MB"))
		if mb <= 0 {
			t.Skip("set GROVE_BIG_SNAPSHOT_MB (e.g. 300) to run; measurement, run without -race")
		}
		r := catchUpRun{target: int64(mb) << 20, snapEntries: 2000, writers: 64, window: 8}
		if v, err := strconv.ParseUint(os.Getenv("GROVE_BIG_SNAPSHOT_ENTRIES"), 10, 64); err == nil && v > 0 {
			r.snapEntries = v
		}
		r.loadDuring, _ = strconv.Atoi(os.Getenv("GROVE_BIG_SNAPSHOT_LOAD"))
		r.catchUpTimeout, _ = time.ParseDuration(os.Getenv("GROVE_BIG_SNAPSHOT_TIMEOUT"))
		r.laggerDir = os.Getenv("GROVE_BIG_SNAPSHOT_FOLLOWER_DIR")
		r.snapMBps, _ = strconv.Atoi(os.Getenv("GROVE_BIG_SNAPSHOT_RATE_MBPS"))
		runSnapshotCatchUp(t, r)
	})
}

// catchUpRun parameterises runSnapshotCatchUp.
type catchUpRun struct {
	target         int64  // bytes of the leader's data file before the restart
	snapEntries    uint64 // SnapshotEntries
	catchUpEntries uint64 // CatchUpEntries; 0: a quarter of snapEntries
	writers        int    // bulk-load sessions
	window         int    // writes in flight per bulk-load session
	loadDuring     int    // bulk-load sessions (window 1) kept writing during the catch-up
	laggerDir      string // if set, the restarted follower's data dir is moved under it
	snapMBps       int    // if positive, snapshot streams are capped at this many MiB/s
	catchUpTimeout time.Duration
	quick          bool // short settle, baseline and after windows (CI)
}

// runSnapshotCatchUp stops a follower, loads the leader, restarts the
// follower and checks that it catches up through a snapshot, while a probe
// writer times the leader's write path.
func runSnapshotCatchUp(t *testing.T, r catchUpRun) {
	ctx := t.Context()
	if r.catchUpTimeout == 0 {
		r.catchUpTimeout = 2 * time.Minute
	}
	if r.catchUpEntries == 0 {
		r.catchUpEntries = r.snapEntries / 4
	}
	c := newTCPCluster(t, 3, float64(r.snapMBps)*(1<<20), func(cfg *core.Config) {
		cfg.SnapshotEntries = r.snapEntries
		cfg.CatchUpEntries = r.catchUpEntries
		cfg.MaxSessionTimeout = 5 * time.Minute
	})
	leader := c.waitLeader(ctx)
	var lagger, other uint64
	for _, p := range c.peers {
		if p.ID == leader.ID() {
			continue
		}
		if lagger == 0 {
			lagger = p.ID
		} else {
			other = p.ID
		}
	}
	term := leader.Status().Term
	laggerApplied := c.node(lagger).AppliedIndex()
	c.stop(lagger)
	if r.laggerDir != "" {
		// Move the stopped follower's data dir to another file system (e.g.
		// tmpfs), so its snapshot writes do not share the leader's disk.
		dir, err := os.MkdirTemp(r.laggerDir, "grove-bigsnap-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		cfg := c.cfgs[lagger]
		if err := os.CopyFS(dir, os.DirFS(cfg.DataDir)); err != nil {
			t.Fatal(err)
		}
		cfg.DataDir = dir
		c.cfgs[lagger] = cfg
		t.Logf("follower %d data dir moved to %s", lagger, dir)
	}

	// Load the leader until its data file holds target bytes, and at least
	// two SnapshotEntries past the stopped follower so that the log is
	// truncated past it whatever the target.
	loadStart := time.Now()
	minIndex := laggerApplied + 2*r.snapEntries
	paths, err := bulkLoad(ctx, leader, "/bulk", r.writers, r.window, func() bool {
		return dataSize(leader) >= r.target && leader.AppliedIndex() >= minIndex
	})
	if err != nil {
		t.Fatal(err)
	}
	loadTook := time.Since(loadStart)
	c.waitApplied(ctx, leader.AppliedIndex())
	size := dataSize(leader)
	t.Logf("loaded %d znodes of %d B in %v (%.0f writes/s): leader data file %.1f MiB at index %d (follower %d stopped at %d); SnapshotEntries %d, CatchUpEntries %d",
		len(paths), snapValueSize, loadTook.Round(time.Millisecond), float64(len(paths))/loadTook.Seconds(),
		float64(size)/(1<<20), leader.AppliedIndex(), lagger, laggerApplied, r.snapEntries, r.catchUpEntries)

	// The probe writer times the leader's write path before, during and
	// after the catch-up.
	stopProbe := make(chan struct{})
	var probe []latencySample
	var probeErr error
	var pwg sync.WaitGroup
	pwg.Go(func() { probe, probeErr = probeWriter(ctx, leader, stopProbe) })
	settle, baseline, after := time.Second, 2*time.Second, time.Second
	if r.quick {
		settle, baseline, after = 100*time.Millisecond, 500*time.Millisecond, 200*time.Millisecond
	}
	time.Sleep(settle + baseline) // settle after the load, then the baseline

	// Sample the leader transport's snapshot bytes, to split the stream into
	// the body on the wire and the follower's fsync, check and ack.
	c.mu.Lock()
	ltr := c.trs[leader.ID()]
	c.mu.Unlock()
	stopSampler := make(chan struct{})
	var bodyStart, bodyEnd time.Time
	var swg sync.WaitGroup
	swg.Go(func() {
		var last uint64
		for {
			select {
			case <-stopSampler:
				return
			case <-time.After(2 * time.Millisecond):
			}
			b := ltr.Stats().SnapshotBytesSent
			if b > 0 && last == 0 {
				bodyStart = time.Now()
			}
			if b > last {
				bodyEnd = time.Now()
			}
			last = b
		}
	})

	// Optionally keep loading the leader during the catch-up.
	var loadDone atomic.Bool
	var lwg sync.WaitGroup
	var duringPaths []string
	var duringErr error
	if r.loadDuring > 0 {
		lwg.Go(func() {
			duringPaths, duringErr = bulkLoad(ctx, leader, "/during", r.loadDuring, 1, loadDone.Load)
		})
	}

	restartAt := time.Now()
	restarted := c.start(lagger, nil)
	// Caught up: the follower installed a snapshot and has applied what the
	// leader had applied 50ms earlier.
	type mark struct {
		at    time.Time
		index uint64
	}
	var marks []mark
	var caughtUp time.Time
	deadline := time.Now().Add(r.catchUpTimeout)
	for caughtUp.IsZero() {
		now := time.Now()
		marks = append(marks, mark{now, leader.AppliedIndex()})
		for len(marks) > 1 && now.Sub(marks[1].at) >= 50*time.Millisecond {
			marks = marks[1:]
		}
		var want uint64
		if now.Sub(marks[0].at) >= 50*time.Millisecond {
			want = marks[0].index
		}
		if want > 0 && restarted.AppliedIndex() >= want && len(c.logs.find("installed snapshot")) > 0 {
			caughtUp = now
			break
		}
		select {
		case <-restarted.Done():
			t.Fatalf("restarted follower stopped: %v", restarted.Err())
		case <-leader.Done():
			t.Fatalf("leader stopped: %v", leader.Err())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			break
		}
	}
	loadDone.Store(true)
	lwg.Wait()
	if duringErr != nil {
		t.Fatal(duringErr)
	}
	time.Sleep(after) // the probe keeps writing after the catch-up
	close(stopProbe)
	pwg.Wait()
	close(stopSampler)
	swg.Wait()
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	if caughtUp.IsZero() {
		for _, rec := range c.logs.all() {
			t.Logf("log: %v", rec)
		}
		end := time.Now()
		t.Logf("probe writes on the leader: before (%v): %v", baseline, summarize(probe, restartAt.Add(-baseline), restartAt))
		st := summarize(probe, restartAt, end)
		t.Logf("probe writes on the leader: restart → give-up: %v; slowest started at +%v after the restart", st, st.maxAt.Sub(restartAt).Round(time.Millisecond))
		ml, nl := c.obs[leader.ID()].maxIn(restartAt, end)
		t.Logf("leader Ready commits restart → give-up: max %v (%d)", ml.Round(time.Millisecond), nl)
		t.Fatalf("follower %d did not catch up in %v: at %d, leader at %d; %d snapshots sent, %d installed; leader data file %.1f MiB",
			lagger, r.catchUpTimeout, restarted.AppliedIndex(), leader.AppliedIndex(),
			len(c.logs.find("snapshot sent")), len(c.logs.find("installed snapshot")), float64(dataSize(leader))/(1<<20))
	}

	// Correctness: a snapshot sent and installed, same state everywhere,
	// acknowledged writes readable on the restarted follower, no election.
	sent := c.logs.find("snapshot sent")
	installed := c.logs.find("installed snapshot")
	if len(sent) == 0 || len(installed) == 0 {
		t.Fatalf("follower caught up without a snapshot (sent %d, installed %d): the log was not truncated past it", len(sent), len(installed))
	}
	c.waitApplied(ctx, leader.AppliedIndex())
	c.checkConverged(ctx)
	sample := slices.Clone(paths[:min(len(paths), 200)])
	for i := 0; i < len(paths); i += max(1, len(paths)/200) {
		sample = append(sample, paths[i])
	}
	sample = append(sample, paths[len(paths)-1])
	sample = append(sample, duringPaths...)
	for _, s := range probe {
		sample = append(sample, s.path)
	}
	for _, p := range sample {
		data, _, _, err := restarted.Get(ctx, core.Read{}, p)
		if err != nil {
			t.Fatalf("restarted follower lacks acknowledged %s: %v", p, err)
		}
		if len(data) == 0 {
			t.Fatalf("restarted follower has empty data at %s", p)
		}
	}
	t.Logf("%d acknowledged writes checked on the restarted follower; digests and applied index equal on all three", len(sample))
	if st := leader.Status(); st.Term != term || !leader.IsLeader() {
		t.Errorf("leadership changed during the test: term %d → %d, leader %v", term, st.Term, leader.IsLeader())
	}

	// Measurements (reported, never asserted).
	for _, rec := range c.logs.all() {
		if rec.level >= slog.LevelWarn || capturedMsgs[rec.msg] || strings.Contains(rec.msg, "ignored snapshot") {
			t.Logf("log: %v", rec)
		}
	}
	if r.loadDuring > 0 {
		t.Logf("%d bulk writes acknowledged during the catch-up (%d sessions)", len(duringPaths), r.loadDuring)
	}
	first := sent[0]
	s := sent[len(sent)-1]
	took := s.attrs["took"].Duration()
	sz := s.attrs["size"].Int64()
	streamEnd := s.time
	streamStart := streamEnd.Add(-took)
	firstStart := first.time.Add(-first.attrs["took"].Duration())
	chunks := max(1, sz/transport.DefaultSnapshotChunkSize)
	chunkTime := took / time.Duration(chunks)
	inst := installed[len(installed)-1].time
	if r.snapMBps > 0 {
		t.Logf("snapshot streams capped at %d MiB/s (test-side throttle)", r.snapMBps)
	}
	t.Logf("snapshot: %d sent; last %.1f MiB in %v = %.1f MiB/s (chunk %d KiB ≈ %v each); restart → first stream start %v; restart → snapshot stored: %v; restart → install: %v; restart → caught up: %v",
		len(sent), float64(sz)/(1<<20), took.Round(time.Millisecond), float64(sz)/(1<<20)/took.Seconds(),
		transport.DefaultSnapshotChunkSize>>10, chunkTime.Round(time.Microsecond),
		firstStart.Sub(restartAt).Round(time.Millisecond), streamEnd.Sub(restartAt).Round(time.Millisecond),
		inst.Sub(restartAt).Round(time.Millisecond), caughtUp.Sub(restartAt).Round(time.Millisecond))
	t.Logf("probe writes on the leader: before (%v): %v", baseline, summarize(probe, restartAt.Add(-baseline), restartAt))
	t.Logf("probe writes on the leader: during the stream: %v", summarize(probe, streamStart, streamEnd))
	if st := summarize(probe, streamStart, streamEnd); st.n > 0 {
		t.Logf("slowest probe write during the stream started at +%v", st.maxAt.Sub(streamStart).Round(time.Millisecond))
	}
	if !bodyEnd.IsZero() && len(sent) == 1 {
		t.Logf("stream: first body byte +%v, last body byte +%v, ack +%v after the stream start",
			bodyStart.Sub(streamStart).Round(time.Millisecond), bodyEnd.Sub(streamStart).Round(time.Millisecond), took.Round(time.Millisecond))
		t.Logf("probe writes on the leader: body on the wire: %v", summarize(probe, streamStart, bodyEnd))
		t.Logf("probe writes on the leader: last byte → ack (follower fsync+check): %v", summarize(probe, bodyEnd, streamEnd))
		for _, id := range []uint64{leader.ID(), other} {
			mb, nb := c.obs[id].maxIn(restartAt.Add(-baseline), restartAt)
			mw, nw := c.obs[id].maxIn(streamStart, bodyEnd)
			mf, nf := c.obs[id].maxIn(bodyEnd, streamEnd)
			t.Logf("node %d Ready commits: before max %v (%d), body on the wire max %v (%d), follower fsync max %v (%d)", id,
				mb.Round(time.Microsecond), nb, mw.Round(time.Microsecond), nw, mf.Round(time.Microsecond), nf)
		}
	}
	mi, _ := c.obs[lagger].maxIn(inst, caughtUp)
	t.Logf("restarted follower: longest Ready commit from install to caught up (the install commit): %v", mi.Round(time.Millisecond))
	t.Logf("probe writes on the leader: stream end → install: %v", summarize(probe, streamEnd, inst))
	st := summarize(probe, restartAt, caughtUp)
	t.Logf("probe writes on the leader: restart → caught up: %v; slowest started at +%v after the restart", st, st.maxAt.Sub(restartAt).Round(time.Millisecond))
	for _, id := range []uint64{leader.ID(), other} {
		m, k := c.obs[id].maxIn(restartAt, caughtUp)
		t.Logf("node %d Ready commits restart → caught up: max %v (%d)", id, m.Round(time.Millisecond), k)
	}
	t.Logf("probe writes on the leader: after: %v", summarize(probe, caughtUp, caughtUp.Add(after)))
	// Received snapshot files are removed once installed (or superseded).
	if left, _ := filepath.Glob(filepath.Join(c.cfgs[lagger].DataDir, "snap-*")); len(left) > 0 {
		var sizes []string
		for _, f := range left {
			if fi, err := os.Stat(f); err == nil {
				sizes = append(sizes, fmt.Sprintf("%s (%.1f MiB)", filepath.Base(f), float64(fi.Size())/(1<<20)))
			}
		}
		t.Logf("snapshot files left in the restarted follower's data dir after catch-up: %v", sizes)
	}
	if fi, err := os.Stat(filepath.Join(c.cfgs[leader.ID()].DataDir, "grove.db")); err == nil {
		t.Logf("leader grove.db on disk: %.1f MiB", float64(fi.Size())/(1<<20))
	}
}

// TestIgnoredSnapshotFileRemoved sends an up-to-date follower a valid
// snapshot older than its commit index, as a leader does when it streams a
// second snapshot while the follower is still installing (or has just
// installed) the first: raft ignores it ("ignored snapshot"), and the
// received snap-*.db file must not stay in the data dir.
// The node removes such a file once its applied index passes it.
func TestIgnoredSnapshotFileRemoved(t *testing.T) {
	ctx := t.Context()
	c := newTCPCluster(t, 3, 0, nil)
	leader := c.waitLeader(ctx)
	var follower *core.Node
	for _, p := range c.peers {
		if p.ID != leader.ID() {
			follower = c.node(p.ID)
			break
		}
	}
	s := mustSession(t, leader, 30*time.Second)
	for i := range 5 {
		if _, err := s.create(ctx, fmt.Sprintf("/a%d", i), []byte("x"), grove.ModePersistent); err != nil {
			t.Fatal(err)
		}
	}
	// A consistent copy of the leader's state at index, as core streams it.
	var body bytes.Buffer
	var index, term uint64
	err := leader.View(func(tx *bbolt.Tx) error {
		var err error
		if index, term, err = fsm.Applied(fsm.Bolt(tx)); err != nil {
			return err
		}
		_, err = tx.WriteTo(&body)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.create(ctx, fmt.Sprintf("/b%d", i), []byte("x"), grove.ModePersistent); err != nil {
			t.Fatal(err)
		}
	}
	c.waitApplied(ctx, leader.AppliedIndex())
	st := leader.Status()
	msg := &pb.Message{
		Type: pb.MsgSnap.Enum(), From: new(leader.ID()), To: new(follower.ID()), Term: new(st.Term),
		Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(index), Term: new(term),
			ConfState: &pb.ConfState{Voters: st.Voters}}},
	}
	header, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	// The leader's own transport would do; a second one with the leader's
	// ID keeps the cluster's connections untouched.
	tc := transport.DefaultConfig()
	tc.ID, tc.ListenAddr = leader.ID(), "127.0.0.1:0"
	tr, err := transport.New(tc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Close() }()
	tr.AddPeer(follower.ID(), c.peers[follower.ID()-1].Addr)
	if err := tr.Start(nopHandler{}); err != nil {
		t.Fatal(err)
	}
	if err := tr.SendSnapshot(ctx, follower.ID(), header, &body); err != nil {
		t.Fatalf("send snapshot: %v", err)
	}
	dir := c.cfgs[follower.ID()].DataDir
	deadline := time.Now().Add(5 * time.Second)
	for {
		left, _ := filepath.Glob(filepath.Join(dir, "snap-*"))
		ignored := false
		for _, r := range c.logs.all() {
			ignored = ignored || strings.Contains(r.msg, "ignored snapshot")
		}
		if ignored && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("follower %d ignored the stale snapshot (%v) but its file is still there: %v", follower.ID(), ignored, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type nopHandler struct{}

func (nopHandler) Receive(uint64, []byte) {}
func (nopHandler) ReceiveSnapshot(context.Context, uint64, []byte, io.Reader) error {
	return errors.New("not a node")
}
func (nopHandler) ReportUnreachable(uint64) {}

// TestLeaderDownElectsAtOnce checks the leader-down fast path: with the
// election timeout out of reach, the followers elect a new leader because
// their transports report the old one's process gone, and no acknowledged
// write is lost.
func TestLeaderDownElectsAtOnce(t *testing.T) {
	c := newTCPCluster(t, 3, 0, func(cfg *core.Config) { cfg.ElectionTicks = 100000 })
	leader := leadWith(t, c, 1)
	s := mustSession(t, leader, 10*time.Second)
	if _, err := s.create(t.Context(), "/before", nil, grove.ModePersistent); err != nil {
		t.Fatal(err)
	}
	c.stop(1) // the port closes with the process's transport
	next := c.waitLeader(t.Context())
	if next.ID() == 1 {
		t.Fatal("the stopped node still leads")
	}
	if _, _, _, err := next.Get(t.Context(), core.Read{Linearizable: true}, "/before"); err != nil {
		t.Fatalf("the new leader lost a write: %v", err)
	}
}

// TestLeaderDownIgnoresLateHeartbeat checks that a heartbeat the stopped
// leader sent before it went down, handled after the transport's report
// (the loop takes its inputs in no fixed order), does not bring the leader
// back: the followers still campaign and elect one of themselves. A slow
// tick leaves the late heartbeat time to land before the quick campaign.
func TestLeaderDownIgnoresLateHeartbeat(t *testing.T) {
	c := newTCPCluster(t, 3, 0, func(cfg *core.Config) {
		cfg.ElectionTicks = 100000
		cfg.TickInterval = 300 * time.Millisecond
	})
	leadWith(t, c, 1)
	term := c.node(2).Status().Term
	followers := []*core.Node{c.node(2), c.node(3)}
	c.stop(1)
	// Each follower forgets the stopped leader on its own; under load one
	// may already have campaigned and won by the time the other is seen,
	// so each is watched until it no longer follows node 1.
	forgot := make([]bool, len(followers))
	waitUntil(t, "the followers to forget the stopped leader", func() bool {
		for i, f := range followers {
			forgot[i] = forgot[i] || f.Leader() != 1
		}
		return forgot[0] && forgot[1]
	})
	for _, f := range followers {
		f.ReceiveRaft(1, &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(f.ID()), Term: proto.Uint64(term)})
	}
	if next := c.waitLeader(t.Context()); next.ID() == 1 {
		t.Fatal("the stopped node still leads")
	}
}

// leadWith makes node id of c the leader and returns it. raft ignores a
// campaign before the bootstrap configuration is applied, so it asks until
// the node leads.
func leadWith(t *testing.T, c *tcpCluster, id uint64) *core.Node {
	t.Helper()
	nd := c.node(id)
	for !nd.IsLeader() {
		if err := nd.Campaign(t.Context()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-time.After(20 * time.Millisecond): // polling for a condition, not ordering
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	if leader := c.waitLeader(t.Context()); leader.ID() != id {
		t.Fatalf("node %d leads after node %d campaigned", leader.ID(), id)
	}
	return nd
}
