package client_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core"
)

// startNode starts a one-node cluster in a temporary directory.
func startNode() (*core.Node, func()) {
	dir, err := os.MkdirTemp("", "grove-example-")
	if err != nil {
		panic(err)
	}
	cfg := core.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.Peers = 1, dir, []core.Peer{{ID: 1}}
	cfg.TickInterval = 10 * time.Millisecond
	n, err := core.StartNode(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	return n, func() { _ = n.Close(); _ = os.RemoveAll(dir) }
}

func Example() {
	n, stop := startNode()
	defer stop()
	ctx := context.Background()
	s, err := n.Session(ctx, client.WithTimeout(5*time.Second))
	if err != nil {
		panic(err)
	}
	defer s.Close(ctx)

	if _, err := s.Create(ctx, "/config", []byte("v1"), grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		panic(err)
	}
	data, stat, ch, err := s.GetW(ctx, "/config")
	if err != nil {
		panic(err)
	}
	fmt.Printf("read %q version %d\n", data, stat.Version)
	if _, err := s.Set(ctx, "/config", []byte("v2"), stat.Version); err != nil {
		panic(err)
	}
	ev := <-ch
	fmt.Println("event:", ev.Type, ev.Path)
	// Output:
	// read "v1" version 0
	// event: NodeDataChanged /config
}

func ExampleSession_Create() {
	n, stop := startNode()
	defer stop()
	ctx := context.Background()
	s, _ := n.Session(ctx)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/queue", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	for range 2 {
		p, err := s.Create(ctx, "/queue/item-", []byte("x"), grove.ModePersistentSequential, grove.OpenACLUnsafe)
		if err != nil {
			panic(err)
		}
		fmt.Println(p)
	}
	_, err := s.Create(ctx, "/queue", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	fmt.Println(err)
	// Output:
	// /queue/item-0000000000
	// /queue/item-0000000001
	// create /queue: grove: node already exists
}

func ExampleSession_Multi() {
	n, stop := startNode()
	defer stop()
	ctx := context.Background()
	s, _ := n.Session(ctx)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/a", []byte("1"), grove.ModePersistent, grove.OpenACLUnsafe)
	// Check the version and write two nodes, all or nothing.
	_, err := s.Multi(ctx,
		grove.CheckOp("/a", 0),
		grove.SetOp("/a", []byte("2"), 0),
		grove.CreateOp("/b", nil, grove.ModePersistent, grove.OpenACLUnsafe))
	fmt.Println("first multi:", err)
	results, err := s.Multi(ctx,
		grove.CheckOp("/a", 0), // stale now
		grove.CreateOp("/c", nil, grove.ModePersistent, grove.OpenACLUnsafe))
	fmt.Println("second multi:", err, "| per op:", results[0].Err, "|", results[1].Err)
	ok, _, _ := s.Exists(ctx, "/c")
	fmt.Println("/c exists:", ok)
	// Output:
	// first multi: <nil>
	// second multi: multi check /a: grove: version conflict | per op: grove: version conflict | grove: runtime inconsistency
	// /c exists: false
}

func ExampleSession_AddWatch() {
	n, stop := startNode()
	defer stop()
	ctx := context.Background()
	s, _ := n.Session(ctx)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/app", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	w, err := s.AddWatch(ctx, "/app", true)
	if err != nil {
		panic(err)
	}
	_, _ = s.Create(ctx, "/app/x", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	_, _ = s.Set(ctx, "/app/x", []byte("1"), -1)
	_ = s.Delete(ctx, "/app/x", -1)
	for range 3 {
		ev := <-w.C
		fmt.Println(ev.Type, ev.Path)
	}
	_ = w.Remove(ctx)
	// Output:
	// NodeCreated /app/x
	// NodeDataChanged /app/x
	// NodeDeleted /app/x
}

func ExampleSession_ChildrenPage() {
	n, stop := startNode()
	defer stop()
	ctx := context.Background()
	s, _ := n.Session(ctx)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/dir", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	for _, name := range []string{"e", "a", "d", "b", "c"} {
		_, _ = s.Create(ctx, "/dir/"+name, nil, grove.ModePersistent, grove.OpenACLUnsafe)
	}
	after := ""
	for {
		names, more, err := s.ChildrenPage(ctx, "/dir", after, 2)
		if err != nil {
			panic(err)
		}
		fmt.Println(names)
		if !more {
			break
		}
		after = names[len(names)-1]
	}
	// Output:
	// [a b]
	// [c d]
	// [e]
}

func ExampleWithChroot() {
	n, stop := startNode()
	defer stop()
	ctx := context.Background()
	root, _ := n.Session(ctx)
	defer root.Close(ctx)
	_, _ = root.Create(ctx, "/tenant", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	s, _ := n.Session(ctx, client.WithChroot("/tenant"))
	defer s.Close(ctx)
	p, _ := s.Create(ctx, "/job-", nil, grove.ModeEphemeralSequential, grove.OpenACLUnsafe)
	fmt.Println("session sees", p)
	names, _, _ := root.Children(ctx, "/tenant")
	fmt.Println("cluster has", names)
	// Output:
	// session sees /job-0000000000
	// cluster has [job-0000000000]
}

func ExampleSession_AddAuth() {
	n, stop := startNode()
	defer stop()
	ctx := context.Background()
	alice, _ := n.Session(ctx, client.WithAuth("digest", []byte("alice:secret")))
	defer alice.Close(ctx)
	_, _ = alice.Create(ctx, "/private", []byte("p"), grove.ModePersistent, grove.CreatorAllACL)
	other, _ := n.Session(ctx)
	defer other.Close(ctx)
	_, _, err := other.Get(ctx, "/private")
	fmt.Println("other:", err)
	data, _, err := alice.Get(ctx, "/private")
	fmt.Println("alice:", string(data), err)
	// Output:
	// other: get /private: grove: not authorized
	// alice: p <nil>
}

func ExampleSession_Sync() {
	n, stop := startNode()
	defer stop()
	ctx := context.Background()
	s, _ := n.Session(ctx)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/x", []byte("fresh"), grove.ModePersistent, grove.OpenACLUnsafe)
	if err := s.Sync(ctx); err != nil {
		panic(err)
	}
	data, _, _ := s.Get(ctx, "/x", client.Linearizable())
	fmt.Println(string(data))
	// Output:
	// fresh
}
