package lock_test

import (
	"context"
	"fmt"
	"os"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/recipes/lock"
)

func ExampleMutex() {
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

	m := lock.NewMutex(s, "/locks/report")
	if err := m.Lock(ctx); err != nil {
		panic(err)
	}
	token, _ := m.Token()
	fmt.Println("holding, token > 0:", token > 0)
	// Commit a write only while the lock is still held.
	guard, _ := m.Guard()
	_, err = s.Multi(ctx, guard, grove.CreateOp("/report", []byte("done"), grove.ModePersistent, grove.OpenACLUnsafe))
	fmt.Println("guarded write:", err)
	select {
	case <-m.Lost():
		fmt.Println("lost")
	default:
		fmt.Println("still held")
	}
	fmt.Println(m.Unlock(ctx))
	// Output:
	// holding, token > 0: true
	// guarded write: <nil>
	// still held
	// <nil>
}

func ExampleMutex_TryLock() {
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
	a, err := node.Session(ctx)
	if err != nil {
		panic(err)
	}
	b, err := node.Session(ctx)
	if err != nil {
		panic(err)
	}
	defer a.Close(ctx)
	defer b.Close(ctx)
	ma, mb := lock.NewMutex(a, "/locks/job"), lock.NewMutex(b, "/locks/job")
	fmt.Println(ma.TryLock(ctx))
	fmt.Println(mb.TryLock(ctx))
	_ = ma.Unlock(ctx)
	fmt.Println(mb.TryLock(ctx))
	_ = mb.Unlock(ctx)
	// Output:
	// <nil>
	// lock: held by another
	// <nil>
}

func ExampleRWMutex() {
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
	a, err := node.Session(ctx)
	if err != nil {
		panic(err)
	}
	b, err := node.Session(ctx)
	if err != nil {
		panic(err)
	}
	defer a.Close(ctx)
	defer b.Close(ctx)
	r1, r2 := lock.NewRWMutex(a, "/locks/table"), lock.NewRWMutex(b, "/locks/table")
	fmt.Println(r1.RLock(ctx), r2.RLock(ctx)) // readers share
	_ = r1.RUnlock(ctx)
	_ = r2.RUnlock(ctx)
	fmt.Println(r1.Lock(ctx)) // a writer alone
	_ = r1.Unlock(ctx)
	// Output:
	// <nil> <nil>
	// <nil>
}

func ExampleSemaphore() {
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
	a, b := lock.NewSemaphore(s, "/sem/db", 2), lock.NewSemaphore(s, "/sem/db", 2)
	fmt.Println(a.Acquire(ctx), b.Acquire(ctx)) // two permits
	ta, _ := a.Token()
	tb, _ := b.Token()
	fmt.Println(tb > ta)
	_ = a.Release(ctx)
	_ = b.Release(ctx)
	// Output:
	// <nil> <nil>
	// true
}
