package config_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/grovekit/grove/recipes/config"
	"github.com/grovekit/grove/recipes/internal/recipetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type settings struct {
	Replicas int    `json:"replicas"`
	Mode     string `json:"mode"`
}

func TestValueCompareAndSet(t *testing.T) {
	r := recipetest.New(t)
	s, _ := r.Session(5 * time.Second)
	v := config.New[settings](s, "/config/app/settings")
	ctx := t.Context()
	if _, err := v.Get(ctx); err == nil {
		t.Fatal("read of a value never set succeeded")
	}
	ver, err := v.Set(ctx, settings{Replicas: 3}, -1)
	if err != nil || ver != 0 {
		t.Fatalf("first set: %d %v", ver, err)
	}
	got, err := v.Get(ctx)
	if err != nil || got.Value.Replicas != 3 || got.Version != 0 {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := v.Set(ctx, settings{Replicas: 4}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Set(ctx, settings{Replicas: 5}, 0); !errors.Is(err, config.ErrConflict) {
		t.Fatalf("stale compare-and-set: %v", err)
	}
}

// A watcher sees versions in increasing order, ending at the last one,
// across a dropped connection.
func TestValueWatchSeesEveryVersionInOrder(t *testing.T) {
	r := recipetest.New(t)
	writer, _ := r.Session(5 * time.Second)
	watcherS, watcherNet := r.Session(5 * time.Second)
	w := config.New[int](watcherS, "/config/counter")
	set := config.New[int](writer, "/config/counter")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := set.Set(ctx, 0, -1); err != nil {
		t.Fatal(err)
	}
	ch, err := w.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const last = 200
	go func() {
		for i := 1; i <= last; i++ {
			if _, err := set.Set(ctx, i, -1); err != nil {
				return
			}
			if i == last/2 {
				watcherNet.Drop()
			}
		}
	}()
	prev := int32(-1)
	for got := range ch {
		if got.Version <= prev {
			t.Fatalf("version %d after %d", got.Version, prev)
		}
		if int(got.Version) != got.Value {
			t.Fatalf("version %d carries value %d", got.Version, got.Value)
		}
		prev = got.Version
		if got.Value == last {
			return
		}
	}
	t.Fatal("the watch ended before the last value")
}

func TestTreeViewAndSnapshot(t *testing.T) {
	r := recipetest.New(t)
	s, _ := r.Session(5 * time.Second)
	ctx := t.Context()
	for i := range 5 {
		if _, err := config.New[int](s, fmt.Sprintf("/config/flags/f%d", i)).Set(ctx, i, -1); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := config.NewTree[int](ctx, s, "/config/flags")
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close(context.Background())
	if keys := tree.Keys(); len(keys) != 5 {
		t.Fatalf("keys: %v", keys)
	}
	changed := tree.Changed()
	if _, err := config.New[int](s, "/config/flags/f2").Set(ctx, 42, -1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("the view did not change")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if v, ok := tree.Get("f2"); ok && v.Value == 42 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the view never showed the new value")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A snapshot under concurrent writes is consistent: the writer keeps
	// f0 and f1 equal (one multi-free pair of writes at a time), so any
	// snapshot sees f1 == f0 or f1 == f0 - 1.
	// Start from a consistent pair, so every state after it is one: the
	// first write of the loop leaves f0 = 100, f1 = 99 (from the initial
	// values, f0 = 100 beside f1 = 1 would be a legitimate state too).
	f0, f1 := config.New[int](s, "/config/flags/f0"), config.New[int](s, "/config/flags/f1")
	for _, v := range []*config.Value[int]{f0, f1} {
		if _, err := v.Set(ctx, 99, -1); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 100; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = f0.Set(ctx, i, -1)
			_, _ = f1.Set(ctx, i, -1)
			time.Sleep(5 * time.Millisecond) // a busy configuration, not a firehose
		}
	}()
	for range 5 {
		snap, zxid, err := tree.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a, b := snap["f0"].Value, snap["f1"].Value
		if zxid == 0 || len(snap) != 5 || (b != a && b != a-1) {
			t.Fatalf("snapshot at %d: f0=%d f1=%d (%d keys)", zxid, a, b, len(snap))
		}
	}
	close(stop)
	<-done
}

// 32 writers increment one value by compare-and-set: no update is lost.
func TestValueContention(t *testing.T) {
	r := recipetest.New(t)
	ctx := t.Context()
	seed, _ := r.Session(5 * time.Second)
	if _, err := config.New[int](seed, "/config/hits").Set(ctx, 0, -1); err != nil {
		t.Fatal(err)
	}
	const writers, each = 32, 3
	var wg sync.WaitGroup
	for range writers {
		s, _ := r.Session(5 * time.Second)
		v := config.New[int](s, "/config/hits")
		wg.Go(func() {
			for range each {
				for {
					cur, err := v.Get(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := v.Set(ctx, cur.Value+1, cur.Version); err == nil {
						break
					} else if !errors.Is(err, config.ErrConflict) {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	// The seed session has seen none of the writers' changes: without a
	// sync its server may not have applied the last of them yet.
	if err := seed.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := config.New[int](seed, "/config/hits").Get(ctx)
	if err != nil || got.Value != writers*each {
		t.Fatalf("value %d (%v), want %d", got.Value, err, writers*each)
	}
}
