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
)

// crashConfig is the config of node id of an n-node crash cluster in dir:
// fsync on. Peers only matters for a fresh dir.
func crashConfig(dir string, id uint64, n int) core.Config {
	cfg := coretest.FastConfig()
	cfg.NoSync = false
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
// coretest wires them (one memtransport network) when n > 1. withPeers
// false starts them as a restart would, with no Peers. On error it closes
// what it started.
func startCrashNodes(ctx context.Context, dir string, n int, withPeers bool) ([]*core.Node, error) {
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
			closeNodes(nodes)
			return nil, fmt.Errorf("start node %d: %w", id, err)
		}
		nodes = append(nodes, nd)
	}
	return nodes, nil
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
	// The parent kills us long before this; the bound only keeps an
	// orphaned child from running forever.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	nodes, err := startCrashNodes(ctx, dir, n, true)
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
		return err
	}
	// Two writers share each session, so their requests pipeline (a
	// request that overtakes its predecessor is re-proposed after it).
	const perSession = 2
	sessions := max(1, 4/n)
	var all []*session
	for _, nd := range nodes {
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
			wg.Go(func() { errc <- crashWriter(ctx, s, fmt.Sprintf("/r%s-n%d-s%d-g%d", round, s.n.ID(), si, g), ack) })
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

// crashWriter creates prefix-0, prefix-1, ... through s until ctx ends,
// calling ack for each acknowledged one.
func crashWriter(ctx context.Context, s *session, prefix string, ack func(string) error) error {
	for i := 0; ; i++ {
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
func crashChild(t *testing.T, dir string, nodes, round, want int) []string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashDirEnv+"="+dir,
		crashNodesEnv+"="+strconv.Itoa(nodes),
		crashRoundEnv+"="+strconv.Itoa(round),
		"GOTRACEBACK=all",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { t.Logf("DEBUG child ran %v", time.Since(t0)) }()
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
	exited := false
	for len(acks) < want && !exited {
		select {
		case line, ok := <-lines:
			if !ok {
				exited = true
				break
			}
			if len(acks) == 0 {
				t.Logf("DEBUG first line after %v", time.Since(t0))
			}
			take(line)
		case <-timeout.C:
			exited = true
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
	nds, err := startCrashNodes(ctx, dir, nodes, false)
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
