package queue_test

import (
	"context"
	"fmt"

	"github.com/grovekit/grove/internal/exampletest"
	"github.com/grovekit/grove/recipes/queue"
)

func ExampleQueue() {
	cluster := exampletest.Start()
	defer cluster.Stop()
	ctx := context.Background()
	s := cluster.Session()
	defer s.Close(ctx)

	q := queue.New(s, "/queues/email", queue.Options{MaxDeliveries: 5})
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
	cluster := exampletest.Start()
	defer cluster.Stop()
	ctx := context.Background()
	s := cluster.Session()
	defer s.Close(ctx)
	q := queue.New(s, "/queues/retry", queue.Options{})
	_ = q.Put(ctx, []byte("flaky job"))
	d, _ := q.Take(ctx)
	_ = d.Nack(ctx) // give it back
	d, _ = q.Take(ctx)
	fmt.Println(string(d.Payload), d.Count)
	_ = d.Ack(ctx)
	// Output:
	// flaky job 2
}
