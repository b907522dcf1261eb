package lock_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/recipes/internal/recipetest"
	"github.com/grovekit/grove/recipes/lock"
)

// holdRecord is one acquisition as its holder saw it.
type holdRecord struct {
	token      int64
	start, end time.Time // start: Lock returned; end: the hold's promise ran out
	worker     int
}

// TestMutexPropertyUnderChaos runs workers taking a lock while nodes crash
// and restart, nodes are isolated and sessions expire. The checker: tokens
// are unique, and in token order every hold's validity window ends before
// the next one starts. A hold's window ends at Unlock, or — when Lost
// closed — at the session deadline it was lost at (the promise the
// library makes; measured that way it does not depend on how fast the
// holder's goroutine noticed).
func TestMutexPropertyUnderChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run; run without -short")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := recipetest.New(t)
	var mu sync.Mutex
	var records []holdRecord
	var nets []*recipetest.Net
	ctx, stop := context.WithTimeout(t.Context(), 6*time.Second)
	defer stop()
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for ctx.Err() == nil {
				s, n := r.Session(600 * time.Millisecond)
				mu.Lock()
				nets = append(nets, n)
				mu.Unlock()
				holdLoop(ctx, s, n, w, rng, func(rec holdRecord) {
					mu.Lock()
					records = append(records, rec)
					mu.Unlock()
				})
			}
		})
	}
	r.Chaos(ctx, seed, 250*time.Millisecond, func() []*recipetest.Net {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(nets)
	}, time.Second)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(records) < 10 {
		t.Fatalf("only %d acquisitions under chaos", len(records))
	}
	slices.SortFunc(records, func(a, b holdRecord) int { return int(a.token - b.token) })
	for i := 1; i < len(records); i++ {
		a, b := records[i-1], records[i]
		if a.token == b.token {
			t.Fatalf("two acquisitions with token %d", a.token)
		}
		if a.end.After(b.start) {
			t.Fatalf("holds overlap: worker %d (token %d) until %v, worker %d (token %d) from %v",
				a.worker, a.token, a.end.Format("15:04:05.000000"), b.worker, b.token, b.start.Format("15:04:05.000000"))
		}
	}
	t.Logf("%d acquisitions, no overlap", len(records))
}

// holdLoop takes and releases the lock until ctx ends or the session dies.
// Now and then the holder's own network is cut while it holds, and it
// holds on for longer than its session can live: the cluster expires it
// and grants the lock to the next waiter, so only Lost keeps the two holds
// apart.
func holdLoop(ctx context.Context, s *client.Session, n *recipetest.Net, w int, rng *rand.Rand, record func(holdRecord)) {
	m := lock.NewMutex(s, "/locks/chaos")
	for ctx.Err() == nil && s.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := m.Lock(lctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				continue
			}
			return
		}
		rec := holdRecord{start: time.Now(), worker: w}
		rec.token, _ = m.Token()
		hold := time.Duration(rng.IntN(20)) * time.Millisecond
		if rng.IntN(5) == 0 {
			n.Cut()
			hold = 1500 * time.Millisecond
		}
		select {
		case <-time.After(hold):
			select {
			case <-m.Lost():
				rec.end = recipetest.LostAt(s.Deadline())
			default:
				rec.end = time.Now()
			}
		case <-m.Lost():
			rec.end = recipetest.LostAt(s.Deadline())
		}
		record(rec)
		n.Heal()
		uctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = m.Unlock(uctx)
		cancel()
	}
}
