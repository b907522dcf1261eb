package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustSession(t *testing.T, n *core.Node, opts ...client.Option) *client.Session {
	t.Helper()
	s, err := n.Session(t.Context(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func TestConcurrentWritesOfOneSessionAreOrdered(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	follower := c.WaitFollower(t.Context())
	s := mustSession(t, follower)
	ctx := t.Context()
	if _, err := s.Create(ctx, "/q", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 32)
	for g := range 32 {
		wg.Go(func() {
			for i := range 5 {
				if _, err := s.Create(ctx, fmt.Sprintf("/q/g%02d-%d", g, i), nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	names, stat, err := s.Children(ctx, "/q")
	if err != nil || len(names) != 160 || stat.NumChildren != 160 {
		t.Fatalf("children: %d %+v %v", len(names), stat, err)
	}
	// Each goroutine's own writes applied in its order: g's i-th node has
	// a lower czxid than its (i+1)-th.
	for g := range 32 {
		var prev int64
		for i := range 5 {
			ok, st, err := s.Exists(ctx, fmt.Sprintf("/q/g%02d-%d", g, i))
			if err != nil || !ok || st.Czxid <= prev {
				t.Fatalf("g%d-%d: %v %+v %v (prev czxid %d)", g, i, ok, st, err, prev)
			}
			prev = st.Czxid
		}
	}
}

func TestAbandonedWriteDoesNotBlockLaterWrites(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	follower := c.WaitFollower(t.Context())
	s := mustSession(t, follower, client.WithTimeout(30*time.Second))
	// Cut the session's node off so the writes are proposed but cannot
	// commit: each caller gives up with an unknown outcome.
	c.Net.Isolate(follower.ID())
	for i := range 5 {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err := s.Create(ctx, fmt.Sprintf("/gone-%d", i), nil, grove.ModePersistent, grove.OpenACLUnsafe)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("write %d during the partition: %v, want a timeout", i, err)
		}
	}
	c.Net.Heal()
	// A later write needs every earlier sequence number settled: the
	// session keeps resolving the abandoned ones in the background.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := s.Create(ctx, "/after", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatalf("write after abandoned ones: %v", err)
	}
	// The abandoned writes did apply, exactly once each.
	names, _, err := s.Children(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	gone := 0
	for _, n := range names {
		if strings.HasPrefix(n, "gone-") {
			gone++
		}
	}
	if gone != 5 {
		t.Fatalf("%d of the 5 abandoned writes applied: %v", gone, names)
	}
}

// A session whose node is cut off expires: its ephemeral goes, and the
// client ends every call and channel with ErrSessionExpired. In a synctest
// bubble (fake clock).
func TestExpiredSessionEndsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := coretest.NewCluster(t, 3)
		follower := c.WaitFollower(t.Context())
		ctx := t.Context()
		s, err := follower.Session(ctx, client.WithTimeout(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Close(context.Background()) }()
		if _, err := s.Create(ctx, "/eph", nil, grove.ModeEphemeral, grove.OpenACLUnsafe); err != nil {
			t.Fatal(err)
		}
		_, _, ch, err := s.ExistsW(ctx, "/never")
		if err != nil {
			t.Fatal(err)
		}
		if time.Until(s.Deadline()) <= 0 {
			t.Fatalf("deadline %v already passed", s.Deadline())
		}
		// Cut the session's node off: its keep-alives no longer reach the
		// leader, which expires the session.
		c.Net.Isolate(follower.ID())
		var other *core.Node
		for _, nd := range c.Nodes() {
			if nd != follower {
				other = nd
			}
		}
		watcher := mustSession(t, other)
		deadline := time.Now().Add(20 * time.Second)
		for {
			ok, _, err := watcher.Exists(ctx, "/eph")
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("ephemeral of the expired session still there")
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Net.Heal()
		select {
		case <-s.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("session did not learn it expired")
		}
		if !errors.Is(s.Err(), grove.ErrSessionExpired) {
			t.Fatalf("Err() = %v", s.Err())
		}
		if _, ok := <-ch; ok {
			t.Fatal("one-shot watch delivered an event instead of closing")
		}
		var states []client.State
		for st := range s.Events() {
			states = append(states, st)
		}
		if len(states) == 0 || states[len(states)-1] != client.StateExpired {
			t.Fatalf("events %v", states)
		}
		if _, err := s.Create(ctx, "/x", nil, grove.ModePersistent, grove.OpenACLUnsafe); !errors.Is(err, grove.ErrSessionExpired) {
			t.Fatalf("write after expiry: %v", err)
		}
	})
}

func TestWatchesFollowZooKeeperSemantics(t *testing.T) {
	n := coretest.NewCluster(t, 1).WaitLeader(t.Context())
	ctx := t.Context()
	s := mustSession(t, n)
	writer := mustSession(t, n)
	if _, err := writer.Create(ctx, "/w", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	_, _, dataCh, err := s.GetW(ctx, "/w")
	if err != nil {
		t.Fatal(err)
	}
	_, _, childCh, err := s.ChildrenW(ctx, "/w")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Create(ctx, "/w/c", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	if ev := <-childCh; ev.Type != grove.EventNodeChildrenChanged || ev.Path != "/w" {
		t.Fatalf("child watch: %+v", ev)
	}
	select {
	case ev := <-dataCh:
		t.Fatalf("data watch fired for a child change: %+v", ev)
	default:
	}
	if err := writer.Delete(ctx, "/w/c", -1); err != nil {
		t.Fatal(err)
	}
	if err := writer.Delete(ctx, "/w", -1); err != nil {
		t.Fatal(err)
	}
	if ev := <-dataCh; ev.Type != grove.EventNodeDeleted {
		t.Fatalf("data watch on delete: %+v", ev)
	}
	if _, open := <-dataCh; open {
		t.Fatal("one-shot channel not closed after its event")
	}
	if _, _, _, err := s.GetW(ctx, "/w"); !errors.Is(err, grove.ErrNoNode) {
		t.Fatalf("GetW on a missing node: %v", err)
	}
}

// Close on a session that already ended (expired here) still waits for
// the goroutines the session ran with Go: they may be unwinding. In a
// synctest bubble, so the goroutine's second of unwinding is exact.
func TestCloseAfterExpiryWaitsForSessionGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := coretest.NewCluster(t, 3)
		follower := c.WaitFollower(t.Context())
		s, err := follower.Session(t.Context(), client.WithTimeout(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		var unwound atomic.Bool
		if !s.Go(func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(time.Second) // clean-up that takes a while
			unwound.Store(true)
		}) {
			t.Fatal("Go refused on a live session")
		}
		if _, err := s.Create(t.Context(), "/eph", nil, grove.ModeEphemeral, grove.OpenACLUnsafe); err != nil {
			t.Fatal(err)
		}
		var other *core.Node
		for _, nd := range c.Nodes() {
			if nd != follower {
				other = nd
			}
		}
		if _, _, err := other.Exists(t.Context(), core.Read{Linearizable: true}, "/eph"); err != nil {
			t.Fatal(err) // other has applied the create: its absence later means the expiry
		}
		c.Net.Isolate(follower.ID()) // no keep-alive reaches the leader: it expires
		for {
			if _, _, err := other.Exists(t.Context(), core.Read{}, "/eph"); errors.Is(err, grove.ErrNoNode) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Net.Heal() // the follower learns it, and so does the session
		<-s.Done()
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !unwound.Load() {
			t.Fatal("Close returned while a session goroutine was still running")
		}
	})
}
