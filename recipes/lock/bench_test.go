package lock_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/front/fronttest"
	"github.com/grovekit/grove/recipes/lock"
)

// benchCluster is three in-process nodes with fsync on, each on a client
// port; sessions are remote, as ZooKeeper's clients are.
func benchCluster(b *testing.B) []string {
	c := coretest.NewCluster(b, 3, coretest.WithConfig(func(cfg *core.Config) { cfg.NoSync = false }))
	c.WaitLeader(context.Background())
	return fronttest.ServeAll(b, c.Nodes())
}

func dialN(b *testing.B, addrs []string, n int) []*client.Session {
	out := make([]*client.Session, n)
	for i := range out {
		s, err := client.Dial(context.Background(), addrs, client.WithTimeout(10*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close(context.Background()) })
		out[i] = s
	}
	return out
}

// BenchmarkMutexUncontended is one Lock+Unlock at a time.
func BenchmarkMutexUncontended(b *testing.B) {
	s := dialN(b, benchCluster(b), 1)[0]
	m := lock.NewMutex(s, "/bench/uncontended")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		if err := m.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMutexHandoffs has workers (each its own session) take turns
// on one lock; handoffs/s is acquisitions per second.
func BenchmarkMutexHandoffs(b *testing.B) {
	for _, workers := range []int{8, 32} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			sessions := dialN(b, benchCluster(b), workers)
			ctx := context.Background()
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for _, s := range sessions {
				m := lock.NewMutex(s, "/bench/contended")
				wg.Go(func() {
					for range work {
						if err := m.Lock(ctx); err != nil {
							b.Error(err)
							return
						}
						if err := m.Unlock(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handoffs/s")
		})
	}
}
