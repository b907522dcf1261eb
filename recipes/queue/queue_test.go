package queue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/grovekit/grove/recipes/internal/recipetest"
	"github.com/grovekit/grove/recipes/queue"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFIFOAndPriority(t *testing.T) {
	r := recipetest.New(t)
	s, _ := r.Session(5 * time.Second)
	q := queue.New(s, "/q/fifo")
	ctx := t.Context()
	for _, item := range []string{"a", "b", "c"} {
		if err := q.Put(ctx, []byte(item)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.PutPriority(ctx, []byte("urgent"), 1); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Len(ctx); err != nil || n != 4 {
		t.Fatalf("len %d %v", n, err)
	}
	var got []string
	for range 4 {
		d, err := q.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(d.Payload))
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != "[urgent a b c]" {
		t.Fatalf("order %v", got)
	}
	if err := q.PutPriority(ctx, nil, 1000); err == nil {
		t.Fatal("priority 1000 accepted")
	}
	recipetest.WaitCount(t, s, "/q/fifo", "i-", 0)
}

func TestBoundAndTakeBlocks(t *testing.T) {
	r := recipetest.New(t)
	s, _ := r.Session(5 * time.Second)
	q := queue.New(s, "/q/bound", queue.WithMax(2))
	ctx := t.Context()
	got := make(chan string, 1)
	go func() {
		d, err := q.Take(ctx)
		if err == nil {
			got <- string(d.Payload)
			_ = d.Ack(ctx)
		}
	}()
	select {
	case g := <-got:
		t.Fatalf("took %q from an empty queue", g)
	case <-time.After(50 * time.Millisecond):
	}
	_ = q.Put(ctx, []byte("x"))
	if g := <-got; g != "x" {
		t.Fatalf("took %q", g)
	}
	_ = q.Put(ctx, []byte("1"))
	_ = q.Put(ctx, []byte("2"))
	if err := q.Put(ctx, []byte("3")); !errors.Is(err, queue.ErrFull) {
		t.Fatalf("put beyond the bound: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	empty := queue.New(s, "/q/empty")
	if _, err := empty.Take(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled take: %v", err)
	}
}

// A consumer whose session dies before Ack gives the item back; after
// WithMaxDeliveries(2) deliveries the item goes to the dead letters.
// Runs in a synctest bubble over in-memory client ports: the session
// timeouts pass on the fake clock.
func TestRedeliveryAndDeadLetter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := recipetest.NewInMemory(t)
		producer, _ := r.Session(5 * time.Second)
		ctx := t.Context()
		q := queue.New(producer, "/q/r", queue.WithMaxDeliveries(2))
		if err := q.Put(ctx, []byte("job")); err != nil {
			t.Fatal(err)
		}
		for attempt := 1; attempt <= 2; attempt++ {
			s, n := r.Session(300 * time.Millisecond)
			d, err := queue.New(s, "/q/r", queue.WithMaxDeliveries(2)).Take(ctx)
			if err != nil || d.Count != attempt {
				t.Fatalf("delivery %d: %+v %v", attempt, d, err)
			}
			n.Cut() // the consumer dies before Ack
			recipetest.WaitCount(t, producer, "/q/r/leases", ".", 0)
			actx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			if err := d.Ack(actx); err == nil {
				t.Fatal("a dead consumer acknowledged")
			}
			cancel()
		}
		// The third attempt finds it dead-lettered.
		deadline := time.Now().Add(30 * time.Second)
		for {
			go func() {
				cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				if d, err := q.Take(cctx); err == nil {
					t.Errorf("delivered a third time: %+v", d)
				}
			}()
			dead, err := q.Dead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(dead) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the item never reached the dead letters")
			}
			time.Sleep(150 * time.Millisecond)
		}
		if n, _ := q.Len(ctx); n != 0 {
			t.Fatalf("%d items left", n)
		}
	})
}

// 8 producers and 32 consumers: every item taken and acknowledged exactly
// once.
func TestConcurrentConsumersAckOnce(t *testing.T) {
	r := recipetest.New(t)
	ctx := t.Context()
	const producers, per = 8, 20
	var wg sync.WaitGroup
	for p := range producers {
		s, _ := r.Session(5 * time.Second)
		q := queue.New(s, "/q/c")
		wg.Go(func() {
			for i := range per {
				if err := q.Put(ctx, []byte(fmt.Sprintf("%d-%d", p, i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	var mu sync.Mutex
	acked := map[string]int{}
	cctx, cancel := context.WithCancel(ctx)
	for range 32 {
		s, _ := r.Session(5 * time.Second)
		q := queue.New(s, "/q/c")
		wg.Go(func() {
			for {
				d, err := q.Take(cctx)
				if err != nil {
					return
				}
				if err := d.Ack(cctx); err != nil {
					if cctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				acked[string(d.Payload)]++
				n := len(acked)
				mu.Unlock()
				if n == producers*per {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	cancel()
	if len(acked) != producers*per {
		t.Fatalf("%d items acknowledged, want %d", len(acked), producers*per)
	}
	for item, n := range acked {
		if n != 1 {
			t.Fatalf("item %s acknowledged %d times", item, n)
		}
	}
}
