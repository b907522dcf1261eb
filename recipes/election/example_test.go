package election_test

import (
	"context"
	"fmt"
	"os"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/recipes/election"
)

func ExampleElection() {
	ctx := context.Background()
	// One embedded node (core.StartNode); client.Dial gives the same
	// *client.Session from a remote cluster.
	dir, err := os.MkdirTemp("", "grove-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cfg := core.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.Peers = 1, dir, []core.Peer{{ID: 1}}
	node, err := core.StartNode(ctx, cfg)
	if err != nil {
		panic(err)
	}
	defer node.Close()
	s1, err := node.Session(ctx)
	if err != nil {
		panic(err)
	}
	s2, err := node.Session(ctx)
	if err != nil {
		panic(err)
	}
	defer s1.Close(ctx)
	defer s2.Close(ctx)

	a := election.New(s1, "/services/scheduler")
	if err := a.Campaign(ctx, []byte("node-a")); err != nil {
		panic(err)
	}
	leader, _ := a.Leader(ctx)
	fmt.Println("leader:", string(leader.Value))

	// b campaigns in the background and takes over when a resigns.
	b := election.New(s2, "/services/scheduler")
	won := make(chan struct{})
	go func() {
		if b.Campaign(ctx, []byte("node-b")) == nil {
			close(won)
		}
	}()
	termA, _ := a.Term()
	_ = a.Resign(ctx)
	<-won
	termB, _ := b.Term()
	leader, _ = b.Leader(ctx)
	fmt.Println("leader:", string(leader.Value), "newer term:", termB > termA)
	// Output:
	// leader: node-a
	// leader: node-b newer term: true
}

func ExampleObserve() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One embedded node (core.StartNode); client.Dial gives the same
	// *client.Session from a remote cluster.
	dir, err := os.MkdirTemp("", "grove-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cfg := core.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.Peers = 1, dir, []core.Peer{{ID: 1}}
	node, err := core.StartNode(ctx, cfg)
	if err != nil {
		panic(err)
	}
	defer node.Close()
	s, err := node.Session(ctx)
	if err != nil {
		panic(err)
	}
	defer s.Close(context.Background())
	e := election.New(s, "/services/api")
	_ = e.Campaign(ctx, []byte("v1"))
	changes := election.Observe(ctx, s, "/services/api")
	fmt.Println(string((<-changes).Value))
	_ = e.Proclaim(ctx, []byte("v2"))
	fmt.Println(string((<-changes).Value))
	// Output:
	// v1
	// v2
}
