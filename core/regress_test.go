package core_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
)

// A node stopped right after StartNode, before its loop persisted the
// bootstrap entries, must bootstrap again on the next start instead of
// coming up with an empty configuration.
func TestRestartBeforeFirstReadyBootstraps(t *testing.T) {
	for i := range 10 {
		dir := t.TempDir()
		cfg := coretest.FastConfig()
		cfg.ID, cfg.DataDir, cfg.Peers = 1, dir, []core.Peer{{ID: 1}}
		n, err := core.StartNode(t.Context(), cfg)
		must(t, err)
		must(t, n.Close())
		n, err = core.StartNode(t.Context(), cfg)
		must(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err = n.CreateSession(ctx, time.Second)
		cancel()
		st := n.Status()
		must(t, n.Close())
		if err != nil {
			t.Fatalf("try %d: restarted node cannot serve: %v (status %+v)", i, err, st)
		}
	}
}

// A leader's late ReadIndex answer to a node's previous incarnation must not
// answer the restarted node's first read: that read would miss a write
// acknowledged before it began.
func TestReadIndexAnswerForEarlierIncarnationIsIgnored(t *testing.T) {
	for attempt := range 3 {
		if staleReadAfterRestart(t) {
			t.Fatalf("attempt %d: linearizable read after restart missed an acknowledged write", attempt)
		}
	}
}

func staleReadAfterRestart(t *testing.T) bool {
	ctx := t.Context()
	c := coretest.NewCluster(t, 3)
	defer c.Close()
	leader := c.WaitLeader(ctx)
	var a uint64
	for _, id := range c.IDs() {
		if id != leader.ID() {
			a = id
			break
		}
	}
	s := mustSession(t, leader, 30*time.Second)
	if _, err := s.create(ctx, "/x", []byte("old"), grove.ModePersistent); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(ctx)
	const d = 500 * time.Millisecond
	c.Net.Delay(leader.ID(), a, d) // the leader's answers to a arrive late
	oldA := c.Node(a)
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	done := make(chan struct{})
	go func() { defer close(done); _, _ = oldA.Sync(sctx) }() // read #1 of the old incarnation
	t0 := time.Now()
	time.Sleep(50 * time.Millisecond) // nemesis timing, not ordering
	c.Crash(a)
	cancel()
	<-done
	res, err := s.submit(ctx, core.Request{Op: core.OpSetData, Path: "/x", Data: []byte("new"), Version: -1})
	if err != nil || res.Code != grove.CodeOK {
		t.Fatalf("write: %+v %v", res, err)
	}
	newA := c.Restart(a)
	time.Sleep(time.Until(t0.Add(d - 40*time.Millisecond)))
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	data, _, _, err := newA.Get(rctx, core.Read{Linearizable: true}, "/x")
	rcancel()
	c.Net.Heal()
	return err == nil && string(data) != "new"
}

// A new leader must not call a live session expired because it has not yet
// applied the session's creation, committed under the old leader. In a
// synctest bubble: the link delays and the election run on a fake clock.
func TestNewLeaderDoesNotExpireUnappliedSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := coretest.NewCluster(t, 3, coretest.WithConfig(func(cfg *core.Config) { cfg.ElectionTicks = 50 }))
		ctx := t.Context()
		l := c.WaitLeader(ctx)
		var o []*core.Node
		for _, nd := range c.Nodes() {
			if nd != l {
				o = append(o, nd)
			}
		}
		c.Net.Delay(l.ID(), o[0].ID(), 100*time.Millisecond)
		c.Net.Delay(l.ID(), o[1].ID(), 100*time.Millisecond)
		c.Net.Delay(o[0].ID(), o[1].ID(), 150*time.Millisecond)
		c.Net.Delay(o[1].ID(), o[0].ID(), 150*time.Millisecond)
		s, err := l.CreateSession(ctx, 10*time.Second)
		must(t, err)
		c.Net.Isolate(l.ID()) // the leader dies right after acknowledging the session
		var nl *core.Node
		for nl == nil {
			for _, nd := range o {
				if nd.IsLeader() {
					nl = nd
				}
			}
			time.Sleep(time.Millisecond)
		}
		if _, err := nl.KeepAlive(ctx, s.ID); err != nil {
			t.Fatalf("new leader answered KeepAlive of an acknowledged session with %v", err)
		}
	})
}

// A session re-reading a watched node must get the event of every change it
// then reads, even when its re-registration races with that change.
func TestReRegisteredWatchStillFires(t *testing.T) {
	n := mustStartSingle(t, t.TempDir())
	ctx := t.Context()
	w := mustSession(t, n, 10*time.Second)
	if _, err := w.create(ctx, "/a", nil, grove.ModePersistent); err != nil {
		t.Fatal(err)
	}
	r := mustSession(t, n, 10*time.Second)
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if res, err := w.submit(ctx, core.Request{Op: core.OpSetData, Path: "/a", Data: []byte("x"), Version: -1}); err != nil || res.Code != grove.CodeOK {
				errc <- err
				return
			}
		}
	}()
	sink := newEventLog()
	prev := int64(-1)
	for i := range 3000 {
		_, st, z, err := n.Get(ctx, core.Read{Session: r.id, Watch: sink}, "/a")
		if err != nil {
			t.Fatal(err)
		}
		if prev >= 0 && st.Mzxid > prev {
			seen := false
			for _, ev := range sink.events() {
				seen = seen || ev.Zxid > prev
			}
			if !seen {
				close(stop)
				t.Fatalf("read %d: watch armed at zxid %d, read data of zxid %d, no event after %d delivered", i, prev, st.Mzxid, prev)
			}
		}
		prev = int64(z)
	}
	close(stop)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
