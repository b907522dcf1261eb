package outq

import (
	"slices"
	"testing"
)

// TestReleaseOrdersHeldEventsByZxid checks that a read's reply goes after
// the events of changes it reflects and before those of later changes,
// each group in the order pushed.
func TestReleaseOrdersHeldEventsByZxid(t *testing.T) {
	var q Queue
	q.Init(16)
	q.Push([]byte("before-hold"))
	q.Hold()
	q.PushEvent([]byte("ev5"), 5)
	q.PushEvent([]byte("ev9"), 9)
	q.Push([]byte("ping")) // reports no change: before the reply
	q.PushEvent([]byte("ev7"), 7)
	if !q.Release([]byte("reply@7"), 7) {
		t.Fatal("release refused")
	}
	q.PushEvent([]byte("ev10"), 10)
	batch, _ := q.Take()
	var got []string
	for _, m := range batch {
		got = append(got, string(m))
	}
	want := []string{"before-hold", "ev5", "ping", "ev7", "reply@7", "ev9", "ev10"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestReleaseFull checks that a release that would overflow the queue is
// refused.
func TestReleaseFull(t *testing.T) {
	var q Queue
	q.Init(2)
	q.Hold()
	q.PushEvent([]byte("a"), 1)
	q.PushEvent([]byte("b"), 2)
	if q.Release([]byte("reply"), 3) {
		t.Fatal("an overflowing release was accepted")
	}
}
