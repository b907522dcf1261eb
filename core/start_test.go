package core_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/core/memtransport"
	"github.com/grovekit/grove/transport"
)

// A fresh single-node cluster elects itself as soon as its configuration is
// applied, not an election timeout later. Not a timing assertion on speed:
// the election timeout is set far beyond the test's patience, so only the
// immediate campaign can make it lead. In a synctest bubble, so the 20 s
// of patience pass on a fake clock.
func TestFreshSingleNodeLeadsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustStartSingle(t, t.TempDir(), func(c *core.Config) { c.ElectionTicks = 100000 })
		deadline := time.Now().Add(20 * time.Second)
		for !n.IsLeader() {
			if time.Now().After(deadline) {
				t.Fatal("a fresh single node did not campaign on its own")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// Regression (code health 1): StartNode set the loop-owned campaignAt after
// the loop had started, and a loop whose first Ready came before any
// caller touched the node read it with no happens-before edge. Under -race
// this test failed on that code: it waits only for signals sent by the loop
// (the Observer), so nothing it does orders StartNode's write before the
// loop's read.
func TestStartDoesNotRaceTheLoop(t *testing.T) {
	for i := range 5 {
		obs := &persistSignal{c: make(chan struct{}, 1024)}
		n := mustStartSingle(t, t.TempDir(), func(c *core.Config) {
			c.TickInterval = time.Millisecond
			c.Observer = obs
		})
		// The bootstrap Ready, then the campaign's: the loop has read
		// campaignAt between the two.
		for range 2 {
			select {
			case <-obs.c:
			case <-time.After(20 * time.Second):
				t.Fatalf("start %d: the node persisted nothing", i)
			}
		}
		if err := n.Close(); err != nil {
			t.Fatalf("start %d: close: %v", i, err)
		}
	}
}

// persistSignal sends on c for every persisted Ready, never blocking.
type persistSignal struct {
	core.NopObserver
	c chan struct{}
}

func (p *persistSignal) ObservePersist(time.Duration, int, int) {
	select {
	case p.c <- struct{}{}:
	default:
	}
}

// Regression (code health 3): a failed StartNode left the transport it was
// given open (the server believed core closed it; core never did), leaking
// the peer listener and, after AddPeer, the peer writers' goroutines. The
// node owns the transport from StartNode on; each failure closes it.
func TestFailedStartClosesTransport(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, cfg *core.Config)
	}{
		{"bad config", func(t *testing.T, cfg *core.Config) {
			cfg.SnapshotEntries, cfg.CatchUpEntries = 10, 20
		}},
		{"corrupt data file", func(t *testing.T, cfg *core.Config) {
			if err := os.WriteFile(filepath.Join(cfg.DataDir, "grove.db"), bytes.Repeat([]byte("not a database "), 4096), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"transport fails to start", func(t *testing.T, cfg *core.Config) {
			tr := cfg.Transport.(*transport.TCP)
			tr.AddPeer(2, "127.0.0.1:1") // a writer goroutine is running
			if err := tr.Start(nopHandler{}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tcfg := transport.DefaultConfig()
			tcfg.ID, tcfg.ListenAddr = 1, "127.0.0.1:0"
			tr, err := transport.New(tcfg)
			if err != nil {
				t.Fatal(err)
			}
			addr := tr.Addr().String()
			cfg := coretest.FastConfig()
			cfg.ID, cfg.DataDir, cfg.Transport = 1, t.TempDir(), tr
			cfg.Peers = []core.Peer{{ID: 1, Addr: addr}, {ID: 2, Addr: "127.0.0.1:1"}, {ID: 3, Addr: "127.0.0.1:1"}}
			tc.setup(t, &cfg)
			if n, err := core.StartNode(t.Context(), cfg); err == nil {
				_ = n.Close()
				t.Fatal("StartNode succeeded")
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				_ = c.Close()
				t.Errorf("the peer listener %s still accepts after the failed start", addr)
			}
			goleak.VerifyNone(t)
		})
	}
}

// A whole cluster restarted at once elects a leader a few ticks in, ranked
// by raft ID, not an election timeout later. Not a timing assertion on
// speed: the restarted nodes' election timeout is set far beyond the
// test's patience, so only the start-up campaign can elect anyone. In a
// synctest bubble (fake clock).
func TestRestartedClusterElectsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		nodes, _, err := startCrashNodes(t.Context(), dir, 3, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nodes[0].Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := closeNodes(nodes); err != nil {
			t.Fatal(err)
		}
		nw := memtransport.NewNetwork()
		for id := uint64(1); id <= 3; id++ {
			cfg := crashConfig(dir, id, 3)
			cfg.Peers = nil
			cfg.ElectionTicks = 100000
			cfg.Transport = nw.Transport(id)
			nd, err := core.StartNode(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := nd.Close(); err != nil {
					t.Errorf("close node %d: %v", nd.ID(), err)
				}
			})
			nodes[id-1] = nd
		}
		deadline := time.Now().Add(20 * time.Second)
		for nodes[0].Leader() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the restarted cluster elected no leader on its own")
			}
			time.Sleep(5 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		// The leader's quorum barrier (a follower's read sent before it knew
		// the leader is retried only an election timeout later).
		if _, err := nodes[nodes[0].Leader()-1].Sync(ctx); err != nil {
			for _, nd := range nodes {
				t.Logf("%+v", nd.Status())
			}
			t.Fatalf("no quorum after the restart: %v", err)
		}
	})
}

// TestDataDirInUseIsRefused starts a second node on a data dir a running
// node holds: it fails at once with ErrDataDirInUse instead of waiting
// forever on the data file's lock (a second grove server on a busy data
// dir used to hang, deaf to SIGTERM).
func TestDataDirInUseIsRefused(t *testing.T) {
	dir := t.TempDir()
	mustStartSingle(t, dir)
	cfg := coretest.FastConfig()
	cfg.ID, cfg.DataDir, cfg.Peers = 1, dir, []core.Peer{{ID: 1}}
	n, err := core.StartNode(t.Context(), cfg)
	if err == nil {
		_ = n.Close()
		t.Fatal("a second node started on a data dir in use")
	}
	if !errors.Is(err, core.ErrDataDirInUse) {
		t.Fatalf("second start: %v, want ErrDataDirInUse", err)
	}
}
