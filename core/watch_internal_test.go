package core

import (
	"sync/atomic"
	"testing"

	"github.com/grovekit/grove"
)

// countingWatcher counts deliveries; it is as cheap as a Watcher can be, so
// the benchmarks below measure the manager, not the sink.
type countingWatcher struct{ n atomic.Int64 }

func (c *countingWatcher) Deliver(grove.Event) { c.n.Add(1) }

// BenchmarkWatchFanout30k measures one event fanned out to 30,000 sessions
// watching its path: the cost the raft loop pays per such event (code
// health 2: it was quadratic in the number of sessions).
func BenchmarkWatchFanout30k(b *testing.B) {
	const sessions = 30000
	for _, tc := range []struct {
		name string
		kind grove.WatchKind
	}{
		{"persistent", grove.WatchPersistent},
		{"recursive", grove.WatchPersistentRecursive},
		{"oneshot", grove.WatchData},
	} {
		b.Run(tc.name, func(b *testing.B) {
			wm := newWatchManager()
			w := &countingWatcher{}
			path := "/app/config"
			if tc.kind == grove.WatchPersistentRecursive {
				path = "/app"
			}
			register := func() {
				wm.mu.Lock()
				for s := uint64(1); s <= sessions; s++ {
					wm.addLocked(s, path, tc.kind, 0, nil, w)
				}
				wm.mu.Unlock()
			}
			register()
			ev := []grove.Event{{Type: grove.EventNodeDataChanged, Path: "/app/config", Zxid: 10}}
			acls := openACLs(len(ev))
			b.ResetTimer()
			for b.Loop() {
				if tc.kind == grove.WatchData {
					b.StopTimer()
					register()
					b.StartTimer()
				}
				wm.dispatch(ev, acls)
			}
			if got := w.n.Load(); got < sessions {
				b.Fatalf("delivered %d events, want at least %d", got, sessions)
			}
		})
	}
}

// Each session gets one event per change even when several of its watches
// match it (an exact watch and recursive watches on two ancestors).
func TestDispatchOncePerSession(t *testing.T) {
	wm := newWatchManager()
	ws := []*countingWatcher{{}, {}, {}}
	wm.mu.Lock()
	wm.addLocked(1, "/a/b", grove.WatchData, 0, nil, ws[0])
	wm.addLocked(1, "/a", grove.WatchPersistentRecursive, 0, nil, ws[0])
	wm.addLocked(1, "/", grove.WatchPersistentRecursive, 0, nil, ws[0])
	wm.addLocked(2, "/a", grove.WatchPersistentRecursive, 0, nil, ws[1])
	wm.addLocked(2, "/", grove.WatchPersistentRecursive, 0, nil, ws[1])
	wm.addLocked(3, "/a/b", grove.WatchPersistent, 0, nil, ws[2])
	wm.addLocked(3, "/a/b", grove.WatchData, 0, nil, ws[2])
	wm.mu.Unlock()
	wm.dispatch([]grove.Event{{Type: grove.EventNodeDataChanged, Path: "/a/b", Zxid: 5}}, openACLs(1))
	for i, w := range ws {
		if got := w.n.Load(); got != 1 {
			t.Errorf("session %d got %d events, want 1", i+1, got)
		}
	}
	// The one-shot watches fired and are gone; the persistent ones remain.
	if got, want := wm.size(), 5; got != want {
		t.Errorf("%d watches left, want %d", got, want)
	}
}

// lockProbe records whether the manager's lock was free when an event was
// delivered.
type lockProbe struct {
	wm              *watchManager
	delivered, held int
}

func (p *lockProbe) Deliver(grove.Event) {
	p.delivered++
	if p.wm.mu.TryLock() {
		p.wm.mu.Unlock()
	} else {
		p.held++
	}
}

// Regression (code health 2): events were delivered while the manager's
// lock was held, so every read registering a watch waited for the whole
// fan-out. They are delivered after the lock is released, for dispatch and
// for a snapshot install's events alike.
func TestDeliverOutsideTheLock(t *testing.T) {
	wm := newWatchManager()
	p := &lockProbe{wm: wm}
	wm.mu.Lock()
	for s := uint64(1); s <= 100; s++ {
		wm.addLocked(s, "/x", grove.WatchPersistent, 0, nil, p)
	}
	wm.mu.Unlock()
	wm.dispatch([]grove.Event{{Type: grove.EventNodeDataChanged, Path: "/x", Zxid: 2}}, openACLs(1))
	wm.beginInstall()
	wm.endInstall([]grove.Event{{Type: grove.EventNodeDeleted, Path: "/x", Zxid: 3}}, openACLs(1))
	if p.delivered != 200 || p.held != 0 {
		t.Fatalf("%d events delivered, %d of them under the lock; want 200 and 0", p.delivered, p.held)
	}
}

// openACLs gives n events the world-readable ACL.
func openACLs(n int) [][]grove.ACL {
	acls := make([][]grove.ACL, n)
	for i := range acls {
		acls[i] = grove.OpenACLUnsafe
	}
	return acls
}
