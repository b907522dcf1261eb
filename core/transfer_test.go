package core_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
)

// A transfer under writers hands leadership to another voter in one term,
// loses no acknowledged write and leaves the writers working.
func TestTransferLeadershipUnderWriters(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	leader := c.WaitLeader(t.Context())
	termBefore := leader.Status().Term
	a := newAcked()
	stopWriters := startWriters(t, c.Nodes(), "/w", a)
	writeN(t, leader, "/before", 10, a)
	to, err := leader.TransferLeadership(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if to == leader.ID() || to == 0 {
		t.Fatalf("transfer reported leader %x", to)
	}
	newLeader := c.WaitLeader(t.Context())
	if newLeader.ID() != to {
		t.Fatalf("transfer said %x leads, the cluster says %x", to, newLeader.ID())
	}
	if term := newLeader.Status().Term; term != termBefore+1 {
		t.Fatalf("term %d after the transfer, was %d: an election beyond the transfer's own", term, termBefore)
	}
	writeN(t, newLeader, "/after", 10, a)
	stopWriters()
	c.WaitConverged(t.Context())
	a.check(t, c)
}

func TestTransferLeadershipRefusals(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	leader := c.WaitLeader(t.Context())
	follower := c.WaitFollower(t.Context())
	if _, err := follower.TransferLeadership(t.Context(), 0); !errors.Is(err, grove.ErrNotLeader) {
		t.Fatalf("transfer on a follower: %v, want ErrNotLeader", err)
	}
	if _, err := leader.TransferLeadership(t.Context(), leader.ID()); !errors.Is(err, grove.ErrBadArguments) {
		t.Fatalf("transfer to itself: %v, want ErrBadArguments", err)
	}
	if _, err := leader.TransferLeadership(t.Context(), 0xdead); !errors.Is(err, grove.ErrBadArguments) {
		t.Fatalf("transfer to a stranger: %v, want ErrBadArguments", err)
	}
	// A named voter gets it.
	to, err := leader.TransferLeadership(t.Context(), follower.ID())
	if err != nil || to != follower.ID() {
		t.Fatalf("transfer to %x: leader %x, %v", follower.ID(), to, err)
	}
}

// roundTrips records the observer calls TestObserverSeesElectionsAndPeers
// checks.
type roundTrips struct {
	core.NopObserver
	mu      sync.Mutex
	peers   map[uint64]int
	leaders int
	applies int
}

func (r *roundTrips) ObservePeerRTT(peer uint64, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d > 0 {
		r.peers[peer]++
	}
}

func (r *roundTrips) ObserveLeaderChange(uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leaders++
}

func (r *roundTrips) ObserveApply(time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applies++
}

// The observer hears of leader changes, applies and each follower's
// heartbeat round trips, and Stats counts the leader changes.
func TestObserverSeesElectionsAndPeers(t *testing.T) {
	obs := &roundTrips{peers: map[uint64]int{}}
	c := coretest.NewCluster(t, 3, coretest.WithConfig(func(cfg *core.Config) { cfg.Observer = obs }))
	leader := c.WaitLeader(t.Context())
	writeN(t, leader, "/obs", 3, newAcked())
	deadline := time.Now().Add(30 * time.Second)
	for {
		obs.mu.Lock()
		peers, leaders, applies := len(obs.peers), obs.leaders, obs.applies
		obs.mu.Unlock()
		if peers == 2 && leaders >= 3 && applies > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("observer saw round trips to %d peers, %d leader changes, %d applies", peers, leaders, applies)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, err := leader.Stats(); err != nil || st.LeaderChanges == 0 {
		t.Fatalf("leader's stats: %d leader changes, %v", st.LeaderChanges, err)
	}
}

// With a follower down, the transfer goes to the live one even when the
// dead one is as caught up and has the lower ID (a dead target would make
// every transfer time out).
func TestTransferLeadershipSkipsDeadVoters(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	leader := c.WaitLeader(t.Context())
	writeN(t, leader, "/t", 5, newAcked())
	c.WaitConverged(t.Context())
	var followers []uint64
	for _, id := range c.IDs() {
		if id != leader.ID() {
			followers = append(followers, id)
		}
	}
	dead, live := min(followers[0], followers[1]), max(followers[0], followers[1])
	c.Crash(dead)
	// Raft notices the dead follower's silence within an election timeout;
	// until then a transfer may still aim at it and time out.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		to, err := leader.TransferLeadership(ctx, 0)
		cancel()
		if err == nil {
			if to != live {
				t.Fatalf("leadership went to %x, want the live follower %x", to, live)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no transfer succeeded with %x down: %v", dead, err)
		}
	}
}
