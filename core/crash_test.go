package core_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/core/memtransport"
)

// The crash tests kill -9 a child process (this test binary running
// TestCrashChild) while it writes with fsync on, then restart its nodes from
// the same data dirs in-process and check that every write the child
// acknowledged survived.
const (
	crashDirEnv   = "GROVE_CRASH_CHILD" // the data dir; set only in the child
	crashNodesEnv = "GROVE_CRASH_NODES" // 1 or 3
	crashRoundEnv = "GROVE_CRASH_ROUND" // names the child's paths
	// crashPointEnv makes the child kill itself with SIGKILL at the
	// GROVE_CRASH_AFTER-th time it passes that point of the write path
	// (core's crash points, between a log commit and the state flush).
	crashPointEnv = "GROVE_CRASH_POINT"
	crashAfterEnv = "GROVE_CRASH_AFTER"
)

// crashConfig is the config of node id of an n-node crash cluster in dir:
// fsync on. Peers only matters for a fresh dir.
func crashConfig(dir string, id uint64, n int) core.Config {
	cfg := coretest.FastConfig()
	cfg.NoSync = false
	// Truncate the log often, so a truncation past what the state file
	// holds would lose acknowledged writes here.
	cfg.SnapshotEntries, cfg.CatchUpEntries = 200, 50
	cfg.ID = id
	cfg.DataDir = dir
	if n > 1 {
		cfg.DataDir = filepath.Join(dir, fmt.Sprintf("node%d", id))
	}
	for i := 1; i <= n; i++ {
		cfg.Peers = append(cfg.Peers, core.Peer{ID: uint64(i), Addr: fmt.Sprintf("mem-%d", i)})
	}
	return cfg
}

// startCrashNodes starts the n nodes of a crash cluster in dir, wired as
// coretest wires them (one memtransport network, returned) when n > 1.
// withPeers false starts them as a restart would, with no Peers. On error
// it closes what it started.
func startCrashNodes(ctx context.Context, dir string, n int, withPeers bool) ([]*core.Node, *memtransport.Network, error) {
	var nw *memtransport.Network
	if n > 1 {
		nw = memtransport.NewNetwork()
	}
	var nodes []*core.Node
	for id := uint64(1); id <= uint64(n); id++ {
		cfg := crashConfig(dir, id, n)
		if !withPeers {
			cfg.Peers = nil
		}
		if nw != nil {
			cfg.Transport = nw.Transport(id)
		}
		nd, err := core.StartNode(ctx, cfg)
		if err != nil {
			_ = closeNodes(nodes) // the start's error is the one to report
			return nil, nil, fmt.Errorf("start node %d: %w", id, err)
		}
		nodes = append(nodes, nd)
	}
	return nodes, nw, nil
}

func closeNodes(nodes []*core.Node) error {
	var errs []error
	for _, nd := range nodes {
		errs = append(errs, nd.Close())
	}
	return errors.Join(errs...)
}

// TestCrashChild is the child process of the crash tests: it writes znodes
// from several goroutines and prints "ACK <path>" once each is
// acknowledged, until it is killed. Run on its own it skips.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of the crash tests (set " + crashDirEnv + ")")
	}
	n, err := strconv.Atoi(os.Getenv(crashNodesEnv))
	if err != nil || (n != 1 && n != 3) {
		t.Fatalf("%s=%q: want 1 or 3", crashNodesEnv, os.Getenv(crashNodesEnv))
	}
	round := os.Getenv(crashRoundEnv)
	// The crash point counts only once a write is acknowledged, so that
	// no crash lands in the start-up's own flushes with nothing to check.
	var armed atomic.Bool
	if point := os.Getenv(crashPointEnv); point != "" {
		after, err := strconv.Atoi(os.Getenv(crashAfterEnv))
		if err != nil || after < 1 {
			t.Fatalf("%s=%q: want a positive count", crashAfterEnv, os.Getenv(crashAfterEnv))
		}
		var hits atomic.Int64
		core.SetCrashHook(func(p string) {
			if p == point && armed.Load() && hits.Add(1) == int64(after) {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal ends the process
			}
		})
	}
	// The parent kills us long before this; the bound only keeps an
	// orphaned child from running forever.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	nodes, nw, err := startCrashNodes(ctx, dir, n, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := closeNodes(nodes); err != nil {
			t.Error(err)
		}
	}()

	var outMu sync.Mutex
	ack := func(p string) error {
		outMu.Lock()
		defer outMu.Unlock()
		_, err := os.Stdout.WriteString("ACK " + p + "\n") // unbuffered: one write per line
		armed.Store(true)
		return err
	}
	// For the idle crash points the writers pause now and then, so the
	// node goes quiet long enough to flush on its own (load shaping, not
	// ordering).
	pause := strings.HasPrefix(os.Getenv(crashPointEnv), "idle")
	// Two writers share each session, so their requests pipeline (a
	// request that overtakes its predecessor is re-proposed after it).
	const perSession = 2
	sessions := max(1, 4/n)
	// For the snapshot point one follower is cut off again and again for
	// longer than the log it could catch up from lasts, so that it
	// installs snapshots; the writers use the other two nodes.
	var lagging *core.Node
	if os.Getenv(crashPointEnv) == "snapshot-installed" {
		if n != 3 {
			t.Fatalf("the snapshot crash point needs 3 nodes, not %d", n)
		}
		lagging = crashFollower(ctx, t, nodes)
		cutCtx, stopCutting := context.WithCancel(ctx)
		cutDone := make(chan struct{})
		go func() {
			defer close(cutDone)
			cutOffAgainAndAgain(cutCtx, nw, lagging.ID())
		}()
		defer func() { stopCutting(); <-cutDone }()
	}
	var all []*session
	for _, nd := range nodes {
		if nd == lagging {
			continue
		}
		for range sessions {
			info, err := nd.CreateSession(ctx, 30*time.Second)
			if err != nil {
				t.Fatalf("create session on node %d: %v", nd.ID(), err)
			}
			all = append(all, &session{n: nd, id: info.ID})
		}
	}
	errc := make(chan error, len(all)*perSession)
	var wg sync.WaitGroup
	for si, s := range all {
		for g := range perSession {
			wg.Go(func() {
				errc <- crashWriter(ctx, s, fmt.Sprintf("/r%s-n%d-s%d-g%d", round, s.n.ID(), si, g), pause, ack)
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Error(err)
		}
	}
}

// crashFollower waits for the nodes to agree on a leader and returns a
// follower.
func crashFollower(ctx context.Context, t *testing.T, nodes []*core.Node) *core.Node {
	t.Helper()
	for ctx.Err() == nil {
		if _, err := nodes[0].Sync(ctx); err != nil {
			t.Fatalf("no quorum: %v", err)
		}
		if l := nodes[0].Leader(); l != 0 {
			for _, nd := range nodes {
				if nd.ID() != l {
					return nd
				}
			}
		}
	}
	t.Fatal("no leader before the deadline")
	return nil
}

// cutOffAgainAndAgain isolates node id for 1.5 s and reconnects it for
// 1 s, until ctx ends (load shaping: each reconnection finds the log
// truncated past it, given the writers' pace).
func cutOffAgainAndAgain(ctx context.Context, nw *memtransport.Network, id uint64) {
	for {
		nw.Isolate(id)
		select {
		case <-ctx.Done():
			return
		case <-time.After(1500 * time.Millisecond):
		}
		nw.Heal()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// crashWriter creates prefix-0, prefix-1, ... through s until ctx ends,
// calling ack for each acknowledged one.
func crashWriter(ctx context.Context, s *session, prefix string, pause bool, ack func(string) error) error {
	for i := 0; ; i++ {
		if pause && i%10 == 9 {
			time.Sleep(250 * time.Millisecond)
		}
		p := fmt.Sprintf("%s-%d", prefix, i)
		res, err := s.submit(ctx, core.Request{Op: core.OpCreate, Path: p, Data: []byte(p), ACL: grove.OpenACLUnsafe})
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("create %s: %w", p, err)
		case res.Code != grove.CodeOK:
			return fmt.Errorf("create %s: %w", p, grove.CodeError(res.Code))
		}
		if err := ack(p); err != nil {
			return err
		}
	}
}

// crashChild runs one child on dir until it has acknowledged at least want
// writes, kills it with SIGKILL and returns every path it acknowledged,
// including those printed between the decision to kill and the kill.
func crashChild(t *testing.T, dir string, nodes, round, want int, env ...string) []string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashDirEnv+"="+dir,
		crashNodesEnv+"="+strconv.Itoa(nodes),
		crashRoundEnv+"="+strconv.Itoa(round),
		"GOTRACEBACK=all",
	)
	cmd.Env = append(cmd.Env, env...)
	selfKill := len(env) > 0
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4096)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(lines)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return // a line cut short was never fully acknowledged
			}
			lines <- line
		}
	})
	var acks, other []string
	take := func(line string) {
		if p, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "ACK "); ok {
			acks = append(acks, p)
		} else {
			other = append(other, line)
		}
	}
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	exited, timedOut := false, false
	for len(acks) < want && !exited {
		select {
		case line, ok := <-lines:
			if !ok {
				exited = true
				break
			}
			take(line)
		case <-timeout.C:
			exited, timedOut = true, true
		}
	}
	killErr := cmd.Process.Kill()
	for line := range lines {
		take(line)
	}
	wg.Wait()
	waitErr := cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
	if selfKill && killed && !timedOut {
		return acks // it killed itself at its crash point, as asked
	}
	if selfKill {
		t.Fatalf("child round %d never reached its crash point (%d acks, wait: %v)\nstdout (non-ACK):\n%s\nstderr:\n%s", round, len(acks), waitErr, strings.Join(other, ""), stderr.String())
	}
	if exited || !killed || killErr != nil {
		t.Fatalf("child round %d did not run until killed (%d acks, wait: %v, kill: %v)\nstdout (non-ACK):\n%s\nstderr:\n%s",
			round, len(acks), waitErr, killErr, strings.Join(other, ""), stderr.String())
	}
	return acks
}

// checkAcked restarts the nodes of dir in-process and checks every path on
// every node, after a quorum barrier so each has applied all committed.
func checkAcked(t *testing.T, dir string, nodes int, acked []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	started := time.Now()
	nds, _, err := startCrashNodes(ctx, dir, nodes, false)
	if err != nil {
		t.Fatalf("restart after kill -9: %v", err)
	}
	defer func() {
		if err := closeNodes(nds); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	for _, nd := range nds {
		if _, err := nd.Sync(ctx); err != nil {
			t.Fatalf("node %d: no quorum after restart: %v", nd.ID(), err)
		}
	}
	var lost []string
	for _, nd := range nds {
		for _, p := range acked {
			data, _, _, err := nd.Get(ctx, core.Read{}, p)
			if err != nil || string(data) != p {
				lost = append(lost, fmt.Sprintf("node %d: %s: %q %v", nd.ID(), p, data, err))
			}
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged writes lost after kill -9 (of %d), first: %s", len(lost), len(acked)*len(nds), strings.Join(lost[:min(10, len(lost))], "; "))
	}
	// Every node replayed its own log from its own flushed state: an entry
	// applied twice, or one skipped, on any of them shows as a different
	// digest once all have applied the same log.
	if len(nds) > 1 {
		compared := false
		for attempt := 0; attempt < 100 && !compared; attempt++ {
			var digests [][32]byte
			var ats []uint64
			for _, nd := range nds {
				if _, err := nd.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				d, at, err := nd.Digest()
				if err != nil {
					t.Fatal(err)
				}
				digests, ats = append(digests, d), append(ats, at)
			}
			if slices.Min(ats) != slices.Max(ats) {
				continue // an entry (an expiry, say) landed between the reads
			}
			for i := range nds[1:] {
				if digests[i+1] != digests[0] {
					t.Fatalf("node %d: digest at %d differs from node %d's", nds[i+1].ID(), ats[0], nds[0].ID())
				}
			}
			compared = true
		}
		if !compared {
			t.Fatal("the nodes never showed one applied index to compare digests at")
		}
	}
	t.Logf("restart: %d nodes back with all %d acknowledged writes in %v", nodes, len(acked), time.Since(started).Round(time.Millisecond))
}

func TestCrashKill9Durability(t *testing.T) {
	for _, tc := range []struct {
		nodes, rounds int
	}{{1, 3}, {3, 3}} {
		t.Run(fmt.Sprintf("nodes=%d", tc.nodes), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(testSeed(t), uint64(tc.nodes)))
			dir := t.TempDir()
			var acked []string
			for round := range tc.rounds {
				want := 150 + rng.IntN(150) // some hundreds; fewer on 3 nodes, slower with fsync
				if tc.nodes > 1 {
					want = 100 + rng.IntN(100)
				}
				got := crashChild(t, dir, tc.nodes, round, want)
				t.Logf("round %d: killed the child after %d acknowledged writes (asked for %d)", round, len(got), want)
				acked = append(acked, got...)
				if dup := len(acked) - len(slices.Compact(slices.Sorted(slices.Values(acked)))); dup != 0 {
					t.Fatalf("%d paths acknowledged twice", dup)
				}
				checkAcked(t, dir, tc.nodes, acked)
			}
		})
	}
}

// A node killed (SIGKILL, by itself) at each point of the write path
// between a log commit and the state flush that follows (an answer sent
// before its Ready's own log commit, a layer frozen but not written, a log
// commit with or without a state batch in it, an idle flush) restarts with
// every acknowledged write, and the nodes of a cluster end with equal
// digests: nothing lost, nothing applied twice.
func TestCrashAtWritePathPoints(t *testing.T) {
	points := []string{"applied", "answered-before-log-commit", "log-committed", "frozen", "state-batch-mid", "flush-committed", "idle-frozen", "idle-flush-committed", "snapshot-installed"}
	for _, nodes := range []int{1, 3} {
		for _, point := range points {
			if nodes == 1 && (point == "answered-before-log-commit" || point == "snapshot-installed") {
				continue // a single node commits only what it has just written, and installs no snapshot
			}
			t.Run(fmt.Sprintf("nodes=%d/%s", nodes, point), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(testSeed(t), uint64(nodes)))
				dir := t.TempDir()
				var acked []string
				for round := range 2 {
					after := 1 + rng.IntN(40)
					switch {
					case strings.HasPrefix(point, "idle") || strings.Contains(point, "frozen") || point == "flush-committed" || point == "state-batch-mid":
						after = 1 + rng.IntN(3) // batches are rarer than Readys
					case point == "snapshot-installed":
						after = 1 + rng.IntN(2)
					}
					got := crashChild(t, dir, nodes, round, 1<<30, crashPointEnv+"="+point, crashAfterEnv+"="+strconv.Itoa(after))
					t.Logf("round %d: the child killed itself at %s #%d after %d acknowledged writes", round, point, after, len(got))
					acked = append(acked, got...)
					checkAcked(t, dir, nodes, acked)
				}
			})
		}
	}
}
