package membership

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startN(t *testing.T, n int, key []byte) []*Gossip {
	t.Helper()
	var gs []*Gossip
	var seeds []string
	for i := range n {
		g, err := Start(Config{
			BindAddr:  "127.0.0.1:0",
			Join:      seeds,
			SecretKey: key,
			Meta:      Meta{Name: fmt.Sprintf("n%d", i+1), RaftID: uint64(100 - i), PeerAddr: fmt.Sprintf("127.0.0.1:%d", 3000+i), Role: RoleVoter},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Close() })
		gs = append(gs, g)
		if len(seeds) == 0 {
			seeds = []string{g.Addr()}
		}
	}
	return gs
}

func TestBootstrapAgreesOnTheInitialSet(t *testing.T) {
	gs := startN(t, 3, []byte("0123456789abcdef"))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var first []Meta
	for i, g := range gs {
		set, err := WaitBootstrap(ctx, g, 3)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if len(set) != 3 || set[0].RaftID != 98 || set[2].RaftID != 100 {
			t.Fatalf("node %d: set %+v", i, set)
		}
		if i == 0 {
			first = set
		} else if fmt.Sprint(set) != fmt.Sprint(first) {
			t.Fatalf("node %d disagrees: %v vs %v", i, set, first)
		}
	}
	// Once one of them holds raft state, a newcomer must join, not bootstrap.
	if err := gs[0].UpdateMeta(func(m *Meta) { m.Bootstrapped = true }); err != nil {
		t.Fatal(err)
	}
	late, err := Start(Config{BindAddr: "127.0.0.1:0", Join: []string{gs[0].Addr()}, SecretKey: []byte("0123456789abcdef"),
		Meta: Meta{Name: "late", RaftID: 7, PeerAddr: "127.0.0.1:1", Role: RoleVoter}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = late.Close() }()
	if _, err := WaitBootstrap(ctx, late, 3); !errors.Is(err, ErrExistingCluster) {
		t.Fatalf("late node: %v", err)
	}
}

func TestLeaveAndDeath(t *testing.T) {
	gs := startN(t, 3, nil)
	waitFor(t, func() bool { return countState(gs[0], StateAlive) == 3 }, gs[0])
	if err := gs[1].Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = gs[1].Close()
	waitFor(t, func() bool { return stateOf2(gs[0], "n2") == StateLeft }, gs[0])
	_ = gs[2].Close() // no leave: it dies
	waitFor(t, func() bool { return stateOf2(gs[0], "n3") == StateDead }, gs[0])
}

func TestWrongKeyCannotJoin(t *testing.T) {
	gs := startN(t, 1, []byte("0123456789abcdef"))
	other, err := Start(Config{BindAddr: "127.0.0.1:0", Join: []string{gs[0].Addr()}, SecretKey: []byte("fedcba9876543210"),
		Meta: Meta{Name: "intruder", RaftID: 9, PeerAddr: "x", Role: RoleVoter}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close() }()
	// Give the join loop a few rounds; the pool must still hold one member.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if countState(gs[0], StateAlive) > 1 {
			t.Fatal("a member with the wrong gossip key joined")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countState(g *Gossip, state string) int {
	n := 0
	for _, m := range g.Members() {
		if m.State == state {
			n++
		}
	}
	return n
}

func stateOf2(g *Gossip, name string) string {
	for _, m := range g.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func waitFor(t *testing.T, cond func() bool, g ...*Gossip) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, x := range g {
				t.Logf("members: %+v", x.Members())
			}
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
