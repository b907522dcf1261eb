package config_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/recipes/config"
	"github.com/grovekit/grove/recipes/internal/recipetest"
)

// TestWatchPropertyUnderChaos: a writer commits versions while nodes crash
// and are isolated and the watchers' connections drop. Every watcher sees
// versions in increasing order, ending at the last committed value.
func TestWatchPropertyUnderChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run; run without -short")
	}
	seed := uint64(time.Now().UnixNano())
	if env := os.Getenv("GROVE_SEED"); env != "" {
		seed, _ = strconv.ParseUint(env, 10, 64)
	}
	t.Logf("seed %d", seed)
	r := recipetest.New(t)
	writer, _ := r.Session(5 * time.Second)
	v := config.New[int](writer, "/config/chaos")
	ctx, stop := context.WithTimeout(t.Context(), 60*time.Second)
	defer stop()
	if _, err := v.Set(ctx, 0, -1); err != nil {
		t.Fatal(err)
	}
	var nets []*recipetest.Net
	var sessions []*client.Session
	var mu sync.Mutex
	var seen [4][]int32
	var wg sync.WaitGroup
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	for i := range seen {
		s, n := r.Session(5 * time.Second)
		nets = append(nets, n)
		sessions = append(sessions, s)
		ch, err := config.New[int](s, "/config/chaos").Watch(watchCtx)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for got := range ch {
				if int(got.Version) != got.Value {
					t.Errorf("watcher %d: version %d carries %d", i, got.Version, got.Value)
				}
				mu.Lock()
				seen[i] = append(seen[i], got.Version)
				mu.Unlock()
			}
		})
	}
	chaosCtx, stopChaos := context.WithTimeout(ctx, 4*time.Second)
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		r.Chaos(chaosCtx, seed, 250*time.Millisecond, func() []*recipetest.Net { return nil }, 0)
	}()
	last := 0
	for chaosCtx.Err() == nil {
		for _, n := range nets {
			if last%25 == 0 {
				n.Drop()
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := v.Set(wctx, last+1, int32(last))
		cancel()
		if err != nil {
			t.Fatalf("set %d: %v", last+1, err)
		}
		last++
	}
	stopChaos()
	<-chaosDone
	caughtUp := time.Now()
	// Wait until every watcher has reached the last value (or time runs
	// out), then stop them.
	for ctx.Err() == nil {
		mu.Lock()
		done := true
		for _, vs := range seen {
			done = done && len(vs) > 0 && int(vs[len(vs)-1]) == last
		}
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if waited := time.Since(caughtUp); waited > 5*time.Second {
		t.Logf("watchers took %v after the last write to reach it", waited)
	}
	stopWatching()
	wg.Wait()
	// Close the sessions here, while every node's client port is up (at
	// cleanup a restarted node's port closes first).
	for _, s := range append(sessions, writer) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := s.Close(cctx); err != nil {
			t.Errorf("close: %v", err)
		}
		cancel()
	}
	for i, vs := range seen {
		if !slices.IsSorted(vs) || len(slices.Compact(slices.Clone(vs))) != len(vs) {
			t.Fatalf("watcher %d saw versions out of order: %v", i, vs)
		}
		if len(vs) == 0 || int(vs[len(vs)-1]) != last {
			t.Fatalf("watcher %d ended at %v, last committed %d", i, vs[len(vs)-1:], last)
		}
	}
	t.Logf("%d versions committed; watchers saw %d, %d, %d, %d of them, in order", last, len(seen[0]), len(seen[1]), len(seen[2]), len(seen[3]))
}
