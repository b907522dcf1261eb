package queue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove/recipes/internal/recipetest"
	"github.com/grovekit/grove/recipes/queue"
)

// TestQueuePropertyUnderChaos: items are put while consumers take them and
// die mid-processing now and then (network cut past their session timeout),
// nodes crash and are isolated. Every item is acknowledged exactly once.
func TestQueuePropertyUnderChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run; run without -short")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := recipetest.New(t)
	const items = 150
	producer, _ := r.Session(5 * time.Second)
	pq := queue.New(producer, "/q/chaos", queue.Options{})
	var mu sync.Mutex
	acked := map[string]int{}
	var nets []*recipetest.Net
	all := make(chan struct{})
	ctx, stop := context.WithTimeout(t.Context(), 60*time.Second)
	defer stop()
	chaosCtx, stopChaos := context.WithTimeout(ctx, 5*time.Second)
	defer stopChaos()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range items {
			for pq.Put(ctx, []byte(fmt.Sprint(i))) != nil && ctx.Err() == nil {
			}
		}
	})
	for w := range 5 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for {
				select {
				case <-all:
					return
				default:
				}
				s, n := r.Session(500 * time.Millisecond)
				mu.Lock()
				nets = append(nets, n)
				mu.Unlock()
				q := queue.New(s, "/q/chaos", queue.Options{})
				for s.Err() == nil {
					tctx, cancel := context.WithTimeout(ctx, time.Second)
					d, err := q.Take(tctx)
					cancel()
					if err != nil {
						select {
						case <-all:
							return
						default:
						}
						if s.Err() != nil || ctx.Err() != nil {
							break
						}
						continue
					}
					if chaosCtx.Err() == nil && rng.IntN(6) == 0 {
						n.Cut() // the consumer dies before Ack: it is never heard from again
						break
					}
					// Ack until its outcome is known: a timed-out Ack may
					// have applied, and the item would look unacknowledged.
					err = d.Ack(ctx)
					if err == nil {
						mu.Lock()
						acked[string(d.Payload)]++
						if len(acked) == items {
							close(all)
						}
						mu.Unlock()
					}
				}
				if ctx.Err() != nil {
					return
				}
			}
		})
	}
	r.Chaos(chaosCtx, seed, 300*time.Millisecond, func() []*recipetest.Net {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(nets)
	}, time.Second)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) != items {
		t.Fatalf("%d of %d items acknowledged", len(acked), items)
	}
	for item, n := range acked {
		if n != 1 {
			t.Fatalf("item %s acknowledged %d times", item, n)
		}
	}
}
