package core_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core/coretest"
)

// Every voter leaving at once must not take the cluster to zero voters:
// raft panics applying such a configuration (a benchmark run crashed a
// node this way when all three servers got SIGTERM right after
// bootstrap). The last voter's removal is refused or skipped, and no node
// panics.
func TestAllVotersLeavingAtOnceKeepsOne(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	c.WaitLeader(t.Context())
	var wg sync.WaitGroup
	for _, n := range c.Nodes() {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			_ = n.RemoveMember(ctx, n.ID())
		})
	}
	wg.Wait()
	voters := 0
	for _, n := range c.Nodes() {
		select {
		case <-n.Done():
			if err := n.Err(); err != nil && !errors.Is(err, grove.ErrStopped) {
				t.Fatalf("node %x stopped: %v", n.ID(), err)
			}
		default:
		}
		voters = max(voters, len(n.Status().Voters))
	}
	if voters == 0 {
		t.Fatal("no node reports a voter")
	}
}

// A single-node cluster refuses to remove its only voter.
func TestLastVoterCannotBeRemoved(t *testing.T) {
	c := coretest.NewCluster(t, 1)
	n := c.WaitLeader(t.Context())
	if err := n.RemoveMember(t.Context(), n.ID()); !errors.Is(err, grove.ErrBadArguments) {
		t.Fatalf("removing the last voter: %v", err)
	}
}
