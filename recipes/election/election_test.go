package election_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/grovekit/grove/recipes/election"
	"github.com/grovekit/grove/recipes/internal/recipetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// 32 campaigners take turns leading: one leader at a time, terms grow.
func TestElectionContention(t *testing.T) {
	r := recipetest.New(t)
	var leaders atomic.Int32
	var mu sync.Mutex
	var terms []int64
	var wg sync.WaitGroup
	for range 32 {
		s, _ := r.Session(5 * time.Second)
		e := election.New(s, "/elect/c")
		wg.Go(func() {
			if err := e.Campaign(t.Context(), []byte("me")); err != nil {
				t.Error(err)
				return
			}
			if n := leaders.Add(1); n != 1 {
				t.Errorf("%d leaders at once", n)
			}
			term, _ := e.Term()
			mu.Lock()
			terms = append(terms, term)
			mu.Unlock()
			leaders.Add(-1)
			if err := e.Resign(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := 1; i < len(terms); i++ {
		if terms[i] <= terms[i-1] {
			t.Fatalf("term %d after %d", terms[i], terms[i-1])
		}
	}
	recipetest.WaitCount(t, r.Embedded(), "/elect", "candidate-", 0)
}

// The leader's session expires: it knows before anyone else can lead, the
// next campaigner takes over, observers see the change, and a cancelled
// campaign leaves nothing behind.
// Runs in a synctest bubble over in-memory client ports: the session
// timeouts pass on the fake clock.
func TestElectionFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := recipetest.NewInMemory(t)
		s1, n1 := r.Session(500 * time.Millisecond)
		s2, _ := r.Session(5 * time.Second)
		s3, _ := r.Session(5 * time.Second)
		a, b := election.New(s1, "/elect/f"), election.New(s2, "/elect/f")
		if err := a.Campaign(t.Context(), []byte("a")); err != nil {
			t.Fatal(err)
		}
		obsCtx, stopObs := context.WithCancel(t.Context())
		defer stopObs()
		obs := election.Observe(obsCtx, s3, "/elect/f")
		if l := <-obs; string(l.Value) != "a" {
			t.Fatalf("observed %q", l.Value)
		}
		if err := a.Proclaim(t.Context(), []byte("a2")); err != nil {
			t.Fatal(err)
		}
		if l := <-obs; string(l.Value) != "a2" {
			t.Fatalf("observed %q after proclaim", l.Value)
		}
		// A campaign cancelled while waiting leaves nothing behind.
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		if err := b.Campaign(ctx, []byte("b")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cancelled campaign: %v", err)
		}
		cancel()
		recipetest.WaitCount(t, s3, "/elect/f", "candidate-", 1)
		termA, _ := a.Term()
		won := make(chan time.Time, 1)
		go func() {
			if b.Campaign(t.Context(), []byte("b")) == nil {
				won <- time.Now()
			}
		}()
		lost := a.Lost()
		n1.Cut()
		var lostAt, wonAt time.Time
		select {
		case <-lost:
			lostAt = time.Now()
		case <-time.After(30 * time.Second):
			t.Fatal("an expired leader still believes it leads")
		}
		select {
		case wonAt = <-won:
		case <-time.After(30 * time.Second):
			t.Fatal("no new leader")
		}
		if wonAt.Before(lostAt) {
			t.Fatal("two leaders at once")
		}
		if termB, _ := b.Term(); termB <= termA {
			t.Fatalf("term %d after %d", termB, termA)
		}
		for l := range obs {
			if string(l.Value) == "b" {
				break
			}
		}
		cur, err := b.Leader(t.Context())
		if err != nil || string(cur.Value) != "b" {
			t.Fatalf("leader: %q %v", cur.Value, err)
		}
		if err := a.Proclaim(t.Context(), []byte("zombie")); err == nil {
			t.Fatal("a lost leader proclaimed")
		}
	})
}
