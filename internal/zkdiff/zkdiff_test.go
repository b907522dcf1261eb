package zkdiff_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/internal/testutil"
	"github.com/grovekit/grove/internal/zkdiff"
	"github.com/grovekit/grove/internal/zktest"
	"github.com/grovekit/grove/zkwire"
)

var (
	seedFlag = flag.Uint64("zkdiff.seed", 0, "run only this seed (replays a reported difference)")
	opsFlag  = flag.Int("zkdiff.ops", 5000, "operations per seed")
	longFlag = flag.Bool("zkdiff.long", false, "the long mode: 20 seeds of 20,000 operations, plus one random seed")
	allFlag  = flag.Bool("zkdiff.all", false, "log every difference and go on (later ones may follow from earlier ones)")
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seeds are the seeds a run covers: fixed ones, so that CI is
// reproducible, more of them in the long mode, or the one -zkdiff.seed
// names.
func seeds(t *testing.T) []uint64 {
	switch {
	case *seedFlag != 0:
		return []uint64{*seedFlag}
	case *longFlag:
		s := []uint64{testutil.Seed(t, 0, "zkdiff.seed")}
		for i := uint64(1); i <= 20; i++ {
			s = append(s, i)
		}
		return s
	}
	return []uint64{1, 2, 3}
}

// TestAgainstZooKeeper runs the differential tester against a standalone
// ZooKeeper 3.8 and a 3-server ensemble, each side by side with a 3-node
// Grove cluster (in process, its ZooKeeper port on every node), and
// requires no difference.
func TestAgainstZooKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper; run without -short")
	}
	ops := *opsFlag
	if *longFlag && ops == 5000 {
		ops = 20000
	}
	for _, ref := range []struct {
		name    string
		servers int
	}{{"standalone", 1}, {"ensemble", 3}} {
		t.Run(ref.name, func(t *testing.T) {
			zkLeader, groveAddrs := zktest.Leader(zktest.StartEnsemble(t, ref.servers)), startGrove(t, 3)
			if zkLeader == "" {
				t.Fatal("no ZooKeeper server leads")
			}
			if ref.servers > 1 {
				nudge(t, zkLeader)
			}
			for _, seed := range seeds(t) {
				// Every session of a seed uses one server of each cluster:
				// some answers (checkWatches) depend on the server's own
				// watches. On Grove's side it is a different node from seed
				// to seed, so followers and the leader both serve. On
				// ZooKeeper's it is the leader: under this load a 3.8.0
				// follower now and then stops answering a session (and
				// logs digest mismatches), which would make the reference,
				// not Grove, fail.
				r := &zkdiff.Runner{
					Reference: zkdiff.Cluster{Name: "ZooKeeper 3.8 " + ref.name, Addrs: []string{zkLeader}},
					Test:      zkdiff.Cluster{Name: "Grove", Addrs: []string{groveAddrs[int(seed)%len(groveAddrs)]}},
					Sessions:  4,
					Logf:      t.Logf,
				}
				if *allFlag {
					r.KeepGoing = func(d *zkdiff.Difference) {
						t.Errorf("step %d: %s\n  reference: %s\n  test:      %s", d.Step, d.Ops[d.Step], d.Reference, d.Test)
					}
				}
				start := time.Now()
				d, err := r.Random(seed, ops)
				if err != nil {
					t.Fatalf("seed %d: %v\nreference cons:\n%s\nreference mntr:\n%s", seed, err,
						zktest.FourLetter(zkLeader, "cons"), zktest.FourLetter(zkLeader, "mntr"))
				}
				if d != nil {
					short := r.Shrink(d, 300)
					t.Errorf("seed %d: Grove differs from %s at step %d of %d (replay: go test ./internal/zkdiff -run 'TestAgainstZooKeeper/%s' -zkdiff.seed=%d); the shortest sequence found:\n%s",
						seed, r.Reference.Name, d.Step, ops, ref.name, seed, short)
					continue
				}
				t.Logf("seed %d: %d operations, 0 differences (%v)", seed, ops, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}

// startGrove runs an n-node in-process Grove cluster with a ZooKeeper port
// on every node. Containers are not reaped within an hour, as on the
// reference.
func startGrove(t *testing.T, n int) []string {
	c := coretest.NewCluster(t, n, coretest.WithConfig(func(cfg *core.Config) {
		cfg.ReapInterval = time.Hour
		cfg.MaxSessionTimeout = time.Minute
	}))
	c.WaitLeader(context.Background())
	var addrs []string
	for _, nd := range c.Nodes() {
		s, err := zkwire.New(zkwire.Config{Node: nd})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, testutil.Serve(t, s, zkwire.ErrClosed))
	}
	if len(addrs) != n {
		t.Fatalf("%d nodes, want %d", len(addrs), n)
	}
	return addrs
}

// nudge keeps a ZooKeeper ensemble's leader busy with a read every 20 ms
// from a session of its own until the test ends. Without it, in lockstep
// use (one request in flight), the 3.8.0 leader now and then leaves a
// request unanswered until some other request arrives (its mntr then shows
// a max_latency of the tester's whole timeout): a stall of the reference,
// not a difference. The reads change nothing the tester compares.
func nudge(t *testing.T, addr string) {
	c, _, err := zk.Connect([]string{addr}, 30*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_, _, _ = c.Exists("/")
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		c.Close()
	})
}
