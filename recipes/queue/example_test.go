package queue_test

import (
	"context"
	"fmt"
	"os"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/recipes/queue"
)

func ExampleQueue() {
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
	s, err := node.Session(ctx)
	if err != nil {
		panic(err)
	}
	defer s.Close(ctx)

	q := queue.New(s, "/queues/email", queue.WithMaxDeliveries(5))
	_ = q.Put(ctx, []byte("welcome alice"))
	_ = q.Put(ctx, []byte("welcome bob"))
	_ = q.PutPriority(ctx, []byte("reset password"), 0) // served first
	for range 3 {
		d, err := q.Take(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s (delivery %d)\n", d.Payload, d.Count)
		_ = d.Ack(ctx) // done: never delivered again
	}
	n, _ := q.Len(ctx)
	fmt.Println("left:", n)
	// Output:
	// reset password (delivery 1)
	// welcome alice (delivery 1)
	// welcome bob (delivery 1)
	// left: 0
}

func ExampleDelivery_Nack() {
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
	s, err := node.Session(ctx)
	if err != nil {
		panic(err)
	}
	defer s.Close(ctx)
	q := queue.New(s, "/queues/retry")
	_ = q.Put(ctx, []byte("flaky job"))
	d, _ := q.Take(ctx)
	_ = d.Nack(ctx) // give it back
	d, _ = q.Take(ctx)
	fmt.Println(string(d.Payload), d.Count)
	_ = d.Ack(ctx)
	// Output:
	// flaky job 2
}
