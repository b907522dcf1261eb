package lock_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/recipes/internal/recipetest"
	"github.com/grovekit/grove/recipes/lock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// 32 contenders, each with its own session: never two holders, every
// acquisition's token above the previous one, nothing left behind.
func TestMutexContention(t *testing.T) {
	r := recipetest.New(t)
	const workers, rounds = 32, 3
	var holders atomic.Int32
	var mu sync.Mutex
	var tokens []int64
	var wg sync.WaitGroup
	for range workers {
		s, _ := r.Session(5 * time.Second)
		m := lock.NewMutex(s, "/locks/contended")
		wg.Go(func() {
			for range rounds {
				if err := m.Lock(t.Context()); err != nil {
					t.Error(err)
					return
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				tok, _ := m.Token()
				mu.Lock()
				tokens = append(tokens, tok)
				mu.Unlock()
				holders.Add(-1)
				if err := m.Unlock(t.Context()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(tokens) != workers*rounds {
		t.Fatalf("%d acquisitions, want %d", len(tokens), workers*rounds)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("token %d after %d: not increasing", tokens[i], tokens[i-1])
		}
	}
	recipetest.WaitCount(t, r.Embedded(), "/locks", "lock-", 0)
}

// A cancelled wait leaves no node behind and does not disturb the queue.
func TestMutexCancelledWaitLeavesNothing(t *testing.T) {
	r := recipetest.New(t)
	s1, _ := r.Session(5 * time.Second)
	s2, _ := r.Session(5 * time.Second)
	holder := lock.NewMutex(s1, "/locks/c")
	if err := holder.Lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	waiter := lock.NewMutex(s2, "/locks/c")
	for range 5 {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		err := waiter.Lock(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cancelled lock: %v", err)
		}
	}
	if err := waiter.TryLock(t.Context()); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("try lock on a held lock: %v", err)
	}
	recipetest.WaitCount(t, s1, "/locks/c", "lock-", 1) // the holder's alone
	if err := holder.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := waiter.TryLock(t.Context()); err != nil {
		t.Fatalf("try lock on a free lock: %v", err)
	}
	_ = waiter.Unlock(t.Context())
	recipetest.WaitCount(t, s1, "/locks", "lock-", 0)
}

// The holder's session expires: it learns it (Lost) no later than the
// cluster can give the lock away, the next waiter gets it with a larger
// token, and the old holder's guard no longer lets a write through.
// Runs in a synctest bubble over in-memory client ports: the session
// timeouts pass on the fake clock.
func TestMutexHolderExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := recipetest.NewInMemory(t)
		s1, n1 := r.Session(500 * time.Millisecond)
		s2, _ := r.Session(5 * time.Second)
		a, b := lock.NewMutex(s1, "/locks/e"), lock.NewMutex(s2, "/locks/e")
		if err := a.Lock(t.Context()); err != nil {
			t.Fatal(err)
		}
		tokA, _ := a.Token()
		guardA, _ := a.Guard()
		got := make(chan time.Time, 1)
		go func() {
			if err := b.Lock(t.Context()); err == nil {
				got <- time.Now()
			}
		}()
		lostA := a.Lost()
		n1.Cut() // a's client goes silent
		var lostAt time.Time
		select {
		case <-lostA:
			lostAt = time.Now()
		case <-time.After(30 * time.Second):
			t.Fatal("the holder never learned it lost the lock")
		}
		var gotAt time.Time
		select {
		case gotAt = <-got:
		case <-time.After(30 * time.Second):
			t.Fatal("the next waiter never got the lock")
		}
		if gotAt.Before(lostAt) {
			t.Fatalf("the waiter held the lock %v before the old holder knew it lost it", lostAt.Sub(gotAt))
		}
		tokB, _ := b.Token()
		if tokB <= tokA {
			t.Fatalf("token %d after %d", tokB, tokA)
		}
		// A write guarded by the old hold is refused.
		if _, err := s2.Multi(t.Context(), guardA, grove.CreateOp("/guarded", nil, grove.ModePersistent, grove.OpenACLUnsafe)); err == nil {
			t.Fatal("a write guarded by a lost lock committed")
		}
		guardB, _ := b.Guard()
		if _, err := s2.Multi(t.Context(), guardB, grove.CreateOp("/guarded", nil, grove.ModePersistent, grove.OpenACLUnsafe)); err != nil {
			t.Fatalf("a write guarded by the held lock: %v", err)
		}
	})
}

// The leader fails while waiters queue: they get the lock in turn.
func TestMutexLeaderFailoverDuringAcquisition(t *testing.T) {
	r := recipetest.New(t)
	s1, _ := r.Session(5 * time.Second)
	s2, _ := r.Session(5 * time.Second)
	a, b := lock.NewMutex(s1, "/locks/f"), lock.NewMutex(s2, "/locks/f")
	if err := a.Lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Lock(t.Context()) }()
	recipetest.WaitCount(t, s1, "/locks/f", "lock-", 2)
	leader := r.C.WaitLeader(t.Context())
	r.C.Crash(leader.ID())
	if err := a.Unlock(t.Context()); err != nil {
		t.Fatalf("unlock across a failover: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("lock across a failover: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiter never got the lock after the failover")
	}
	select {
	case <-b.Lost():
		t.Fatal("the new holder lost the lock in a failover")
	default:
	}
	r.C.Restart(leader.ID())
}

// The connection drops while the contender node is being created: the
// create is resent and applied once, so exactly one node exists.
func TestMutexConnectionLossDuringCreate(t *testing.T) {
	r := recipetest.New(t)
	s1, n1 := r.Session(5 * time.Second)
	for range 20 {
		m := lock.NewMutex(s1, "/locks/d")
		done := make(chan error, 1)
		go func() { done <- m.Lock(t.Context()) }()
		n1.Drop()
		if err := <-done; err != nil {
			t.Fatalf("lock across a dropped connection: %v", err)
		}
		recipetest.WaitCount(t, s1, "/locks/d", "lock-", 1)
		if err := m.Unlock(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	recipetest.WaitCount(t, s1, "/locks/d", "lock-", 0)
}

func TestRWMutex(t *testing.T) {
	r := recipetest.New(t)
	s1, _ := r.Session(5 * time.Second)
	s2, _ := r.Session(5 * time.Second)
	s3, _ := r.Session(5 * time.Second)
	r1, r2, w := lock.NewRWMutex(s1, "/locks/rw"), lock.NewRWMutex(s2, "/locks/rw"), lock.NewRWMutex(s3, "/locks/rw")
	if err := r1.RLock(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r2.RLock(t.Context()); err != nil {
		t.Fatal("two readers must share:", err)
	}
	wrote := make(chan error, 1)
	go func() { wrote <- w.Lock(t.Context()) }()
	recipetest.WaitCount(t, s1, "/locks/rw", "write-", 1)
	// A reader arriving after the waiting writer waits behind it.
	late := lock.NewRWMutex(s1, "/locks/rw")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	if err := late.RLock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a reader overtook a waiting writer: %v", err)
	}
	cancel()
	select {
	case err := <-wrote:
		t.Fatalf("the writer got in while readers held (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	_ = r1.RUnlock(t.Context())
	_ = r2.RUnlock(t.Context())
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if _, err := w.Token(); err != nil {
		t.Fatal(err)
	}
	_ = w.Unlock(t.Context())
	recipetest.WaitCount(t, s1, "/locks/rw", "-", 0)
}

func TestSemaphore(t *testing.T) {
	r := recipetest.New(t)
	const permits, workers = 3, 12
	var inside, peak atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		s, _ := r.Session(5 * time.Second)
		sem := lock.NewSemaphore(s, "/sem", permits)
		wg.Go(func() {
			if err := sem.Acquire(t.Context()); err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			inside.Add(-1)
			_ = sem.Release(t.Context())
		})
	}
	wg.Wait()
	if p := peak.Load(); p > permits || p < 2 {
		t.Fatalf("peak of %d holders with %d permits", p, permits)
	}
}
