package client_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/front/fronttest"
)

// benchSession opens a session on a one-node cluster (fsync on): remote
// through a loopback client port, or embedded in process.
func benchSession(b *testing.B, remote bool) *client.Session {
	c := coretest.NewCluster(b, 1, coretest.WithConfig(func(cfg *core.Config) { cfg.NoSync = false }))
	n := c.WaitLeader(b.Context())
	var s *client.Session
	var err error
	if remote {
		addrs := fronttest.ServeAll(b, c.Nodes())
		s, err = client.Dial(b.Context(), addrs)
	} else {
		s, err = n.Session(b.Context())
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	if _, err := s.Create(b.Context(), "/b", make([]byte, 128), grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		b.Fatal(err)
	}
	return s
}

func modes(b *testing.B, fn func(b *testing.B, s *client.Session)) {
	for _, remote := range []bool{false, true} {
		name := "embedded"
		if remote {
			name = "remote"
		}
		b.Run(name, func(b *testing.B) { fn(b, benchSession(b, remote)) })
	}
}

// BenchmarkGetRoundTrip is the latency of one read, one at a time.
func BenchmarkGetRoundTrip(b *testing.B) {
	modes(b, func(b *testing.B, s *client.Session) {
		ctx := b.Context()
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.Get(ctx, "/b"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSetRoundTrip is the latency of one write (fsync), one at a time.
func BenchmarkSetRoundTrip(b *testing.B) {
	value := make([]byte, 128)
	modes(b, func(b *testing.B, s *client.Session) {
		ctx := b.Context()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Set(ctx, "/b", value, -1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetPipelined is read throughput of one session with 64
// goroutines sharing it.
func BenchmarkGetPipelined(b *testing.B) {
	modes(b, func(b *testing.B, s *client.Session) {
		ctx := b.Context()
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := s.Get(ctx, "/b"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkSetPipelined is write throughput of one session with 64
// goroutines sharing it: the writes pipeline through raft in session order
// and commit in groups.
func BenchmarkSetPipelined(b *testing.B) {
	value := make([]byte, 128)
	modes(b, func(b *testing.B, s *client.Session) {
		ctx := b.Context()
		var next atomic.Int64
		for i := range 64 {
			if _, err := s.Create(ctx, fmt.Sprintf("/b/%d", i), value, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			path := fmt.Sprintf("/b/%d", next.Add(1)%64)
			for pb.Next() {
				if _, err := s.Set(ctx, path, value, -1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
