package queue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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
	pq := queue.New(producer, "/q/chaos")
	var mu sync.Mutex
	acked := map[string]int{}
	unknown := map[string]bool{} // Acks whose outcome the consumer never learned
	closed := false
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
				q := queue.New(s, "/q/chaos")
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
					actx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err = d.Ack(actx)
					cancel()
					mu.Lock()
					switch {
					case err == nil:
						acked[string(d.Payload)]++
					case actx.Err() != nil:
						// Outcome unknown: the final state decides.
						unknown[string(d.Payload)] = true
					}
					if !closed && settled(acked, unknown, items) {
						closed = true
						close(all)
					}
					mu.Unlock()
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
	// Items whose Ack outcome was unknown must be gone from the queue (and
	// not dead-lettered): their Ack applied.
	left, err := recipetest.Tree(context.Background(), producer, "/q/chaos")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range left {
		if strings.Contains(p, "/items/") || strings.Contains(p, "/dead/") {
			t.Errorf("left in the queue: %s", p)
		}
	}
	if len(acked)+len(unknown) < items {
		t.Fatalf("%d of %d items acknowledged (%d with an unknown outcome)", len(acked), items, len(unknown))
	}
	if len(unknown) > 0 {
		t.Logf("%d Acks ended without an answer; the queue shows them applied", len(unknown))
	}
	for item, n := range acked {
		if n != 1 {
			t.Fatalf("item %s acknowledged %d times", item, n)
		}
	}
}

// settled reports whether every item is acknowledged or has an Ack of
// unknown outcome.
func settled(acked map[string]int, unknown map[string]bool, items int) bool {
	n := len(acked)
	for item := range unknown {
		if acked[item] == 0 {
			n++
		}
	}
	return n >= items
}
