package config_test

import (
	"context"
	"fmt"
	"os"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/recipes/config"
)

func ExampleValue() {
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

	type Limits struct{ MaxConns int }
	v := config.New[Limits](s, "/config/api/limits")
	_, _ = v.Set(ctx, Limits{MaxConns: 100}, -1)
	cur, _ := v.Get(ctx)
	fmt.Println(cur.Value.MaxConns, cur.Version)
	// Compare-and-set: only if nobody wrote since we read.
	_, err = v.Set(ctx, Limits{MaxConns: 200}, cur.Version)
	fmt.Println(err)
	_, err = v.Set(ctx, Limits{MaxConns: 300}, cur.Version)
	fmt.Println(err)
	// Output:
	// 100 0
	// <nil>
	// config: version conflict
}

func ExampleValue_Watch() {
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
	v := config.New[string](s, "/config/mode")
	_, _ = v.Set(ctx, "blue", -1)
	changes, _ := v.Watch(ctx)
	fmt.Println((<-changes).Value)
	_, _ = v.Set(ctx, "green", -1)
	fmt.Println((<-changes).Value)
	// Output:
	// blue
	// green
}

func ExampleTree() {
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
	for name, on := range map[string]bool{"dark-mode": true, "beta": false} {
		_, _ = config.New[bool](s, "/config/features/"+name).Set(ctx, on, -1)
	}
	tree, _ := config.NewTree[bool](ctx, s, "/config/features")
	defer tree.Close(ctx)
	fmt.Println(tree.Keys())
	snap, _, _ := tree.Snapshot(ctx)
	fmt.Println(snap["dark-mode"].Value, snap["beta"].Value)
	// Output:
	// [beta dark-mode]
	// true false
}
