package core_test

import (
	"testing"
	"time"

	"github.com/grovekit/grove/core"
)

// A fresh single-node cluster elects itself as soon as its configuration is
// applied, not an election timeout later. Not a timing assertion on speed:
// the election timeout is set far beyond the test's patience, so only the
// immediate campaign can make it lead.
func TestFreshSingleNodeLeadsAtOnce(t *testing.T) {
	n := mustStartSingle(t, t.TempDir(), func(c *core.Config) { c.ElectionTicks = 100000 })
	deadline := time.Now().Add(20 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("a fresh single node did not campaign on its own")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Regression (code health 1): StartNode set the loop-owned campaignAt after
// the loop had started, and a loop whose first Ready came before any
// caller touched the node read it with no happens-before edge. Under -race
// this test failed on that code: it waits only for signals sent by the loop
// (the Observer), so nothing it does orders StartNode's write before the
// loop's read.
func TestStartDoesNotRaceTheLoop(t *testing.T) {
	for i := range 5 {
		obs := &persistSignal{c: make(chan struct{}, 1024)}
		n := mustStartSingle(t, t.TempDir(), func(c *core.Config) {
			c.TickInterval = time.Millisecond
			c.Observer = obs
		})
		// The bootstrap Ready, then the campaign's: the loop has read
		// campaignAt between the two.
		for range 2 {
			select {
			case <-obs.c:
			case <-time.After(20 * time.Second):
				t.Fatalf("start %d: the node persisted nothing", i)
			}
		}
		if err := n.Close(); err != nil {
			t.Fatalf("start %d: close: %v", i, err)
		}
	}
}

// persistSignal sends on c for every persisted Ready, never blocking.
type persistSignal struct{ c chan struct{} }

func (p *persistSignal) ObservePersist(time.Duration, int, int) {
	select {
	case p.c <- struct{}{}:
	default:
	}
}
