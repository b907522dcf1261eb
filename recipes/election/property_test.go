package election_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove/recipes/election"
	"github.com/grovekit/grove/recipes/internal/recipetest"
)

type term struct {
	term       int64
	start, end time.Time
	who        int
}

// TestElectionPropertyUnderChaos: campaigners lead, resign and lose their
// sessions (some are cut off while leading, longer than their session
// lives) while nodes crash and are isolated. No two leaderships share a
// term, and in term order each one's window (ended at Resign, or at the
// session deadline it was lost at) ends before the next begins.
func TestElectionPropertyUnderChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run; run without -short")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := recipetest.New(t)
	var mu sync.Mutex
	var terms []term
	var nets []*recipetest.Net
	ctx, stop := context.WithTimeout(t.Context(), 6*time.Second)
	defer stop()
	var wg sync.WaitGroup
	for w := range 5 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for ctx.Err() == nil {
				s, n := r.Session(600 * time.Millisecond)
				mu.Lock()
				nets = append(nets, n)
				mu.Unlock()
				e := election.New(s, "/elect/chaos")
				for ctx.Err() == nil && s.Err() == nil {
					cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					err := e.Campaign(cctx, []byte{byte(w)})
					cancel()
					if err != nil {
						if cctx.Err() != nil {
							continue
						}
						break
					}
					rec := term{start: time.Now(), who: w}
					rec.term, _ = e.Term()
					lead := time.Duration(rng.IntN(20)) * time.Millisecond
					if rng.IntN(5) == 0 {
						n.Cut()
						lead = 1500 * time.Millisecond
					}
					select {
					case <-time.After(lead):
						select {
						case <-e.Lost():
							rec.end = recipetest.LostAt(s.Deadline())
						default:
							rec.end = time.Now()
						}
					case <-e.Lost():
						rec.end = recipetest.LostAt(s.Deadline())
					}
					mu.Lock()
					terms = append(terms, rec)
					mu.Unlock()
					n.Heal()
					rctx, cancel := context.WithTimeout(context.Background(), time.Second)
					_ = e.Resign(rctx)
					cancel()
				}
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
	if len(terms) < 10 {
		t.Fatalf("only %d terms under chaos", len(terms))
	}
	slices.SortFunc(terms, func(a, b term) int { return int(a.term - b.term) })
	for i := 1; i < len(terms); i++ {
		a, b := terms[i-1], terms[i]
		if a.term == b.term {
			t.Fatalf("two leaders in term %d", a.term)
		}
		if a.end.After(b.start) {
			t.Fatalf("two leaders at once: %d (term %d) until %v, %d (term %d) from %v", a.who, a.term, a.end, b.who, b.term, b.start)
		}
	}
	t.Logf("%d terms, never two leaders", len(terms))
}
