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
