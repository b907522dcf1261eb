package core_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
)

// Defrag shrinks a state file that deletes left mostly empty, keeps the
// state (digest and index), serves reads and writes during and after it,
// and the node restarts from the compacted file.
func TestDefragShrinksAndKeepsState(t *testing.T) {
	dir := t.TempDir()
	n := mustStartSingle(t, dir)
	ctx := t.Context()
	s := mustSession(t, n, 10*time.Second)
	data := make([]byte, 8<<10)
	for i := range 2000 {
		if _, err := s.create(ctx, fmt.Sprintf("/d%04d", i), data, grove.ModePersistent); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1950 {
		if _, err := s.submit(ctx, core.Request{Op: core.OpDelete, Path: fmt.Sprintf("/d%04d", i), Version: -1}); err != nil {
			t.Fatal(err)
		}
	}
	// Readers keep reading while the file is swapped under them.
	rctx, stopReaders := context.WithCancel(ctx)
	var wg sync.WaitGroup
	readErrs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for rctx.Err() == nil {
				if _, _, _, err := n.Get(rctx, core.Read{}, "/d1999"); err != nil && rctx.Err() == nil {
					readErrs <- err
					return
				}
			}
		})
	}
	wantDigest, wantIndex, err := n.Digest()
	if err != nil {
		t.Fatal(err)
	}
	before, after, err := n.Defrag(ctx)
	stopReaders()
	wg.Wait()
	close(readErrs)
	for err := range readErrs {
		t.Fatalf("read during defrag: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if after <= 0 || after >= before/2 {
		t.Fatalf("defrag: %d bytes before, %d after", before, after)
	}
	t.Logf("state file %d -> %d bytes", before, after)
	got, index, err := n.Digest()
	if err != nil || got != wantDigest || index < wantIndex {
		t.Fatalf("state after defrag: %x@%d (%v), want %x@%d", got, index, err, wantDigest, wantIndex)
	}
	if _, err := s.create(ctx, "/after-defrag", []byte("x"), grove.ModePersistent); err != nil {
		t.Fatalf("write after defrag: %v", err)
	}
	want, _, err := n.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := mustStartSingle(t, dir, func(c *core.Config) { c.Peers = nil })
	if got, _, err := n2.Digest(); err != nil || got != want {
		t.Fatalf("restart from the compacted file: %x (%v), want %x", got, err, want)
	}
}

// A follower defragmented under writers keeps up: every acknowledged
// write is on every node afterwards.
func TestDefragFollowerUnderWriters(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	leader := c.WaitLeader(t.Context())
	follower := c.WaitFollower(t.Context())
	a := newAcked()
	stopWriters := startWriters(t, []*core.Node{leader}, "/w", a)
	writeN(t, leader, "/before", 20, a)
	for range 3 {
		if _, _, err := follower.Defrag(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	writeN(t, leader, "/after", 20, a)
	stopWriters()
	c.WaitConverged(t.Context())
	a.check(t, c)
}
