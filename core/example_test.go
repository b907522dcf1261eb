package core_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
)

// exampleNode starts a one-node cluster in a fresh temporary directory. The
// returned function closes the node and removes the directory.
func exampleNode() (*core.Node, func()) {
	dir, err := os.MkdirTemp("", "grove-example-")
	if err != nil {
		log.Fatal(err)
	}
	cfg := core.DefaultConfig()
	cfg.ID, cfg.DataDir = 1, dir
	cfg.Peers = []core.Peer{{ID: 1}}
	n, err := core.StartNode(context.Background(), cfg)
	if err != nil {
		_ = os.RemoveAll(dir)
		log.Fatal(err)
	}
	return n, func() {
		if err := n.Close(); err != nil {
			log.Print(err)
		}
		_ = os.RemoveAll(dir)
	}
}

// exampleSession opens a session on n and returns its id.
func exampleSession(ctx context.Context, n *core.Node) uint64 {
	s, err := n.CreateSession(ctx, 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	return s.ID
}

// exampleWrite submits req and stops the example on a pipeline error or a
// failed operation.
func exampleWrite(ctx context.Context, n *core.Node, req *core.Request) *core.Result {
	res, err := n.Submit(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	if err := grove.CodeError(res.Code); err != nil {
		log.Fatal(err)
	}
	return res
}

// A one-node cluster: the node elects itself at once. Its state lives in
// the data dir; starting a node on the same dir again restores it.
func ExampleStartNode() {
	dir, err := os.MkdirTemp("", "grove-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	cfg := core.DefaultConfig()
	cfg.ID, cfg.DataDir = 1, dir
	cfg.Peers = []core.Peer{{ID: 1}} // the initial cluster: this node alone
	n, err := core.StartNode(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

	s, err := n.CreateSession(ctx, 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	res, err := n.Submit(ctx, &core.Request{Session: s.ID, Seq: 1,
		Op: core.OpCreate, Path: "/hello", Data: []byte("world"), ACL: grove.OpenACLUnsafe})
	if err != nil {
		log.Fatal(err)
	}
	data, _, _, err := n.Get(ctx, core.Read{}, res.Path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("leader: %v, %s = %s\n", n.IsLeader(), res.Path, data)
	// Output:
	// leader: true, /hello = world
}

// The requested timeout is clamped to [MinSessionTimeout, MaxSessionTimeout]
// (2s and 60s by default).
func ExampleNode_CreateSession() {
	n, done := exampleNode()
	defer done()
	ctx := context.Background()

	s, err := n.CreateSession(ctx, 100*time.Millisecond)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("timeout:", s.Timeout)
	fmt.Println("password bytes:", len(s.Password))
	info, ok, err := n.SessionInfo(s.ID)
	fmt.Println("replicated:", ok, info.Timeout, err)
	// Output:
	// timeout: 2s
	// password bytes: 16
	// replicated: true 2s <nil>
}

// Writes are numbered per session from 1. An operation's failure comes back
// in Result.Code; the error return is for the pipeline (ctx, node stopped).
func ExampleNode_Submit() {
	n, done := exampleNode()
	defer done()
	ctx := context.Background()
	sid := exampleSession(ctx, n)

	res, err := n.Submit(ctx, &core.Request{Session: sid, Seq: 1,
		Op: core.OpCreate, Path: "/config", Data: []byte("v1"), ACL: grove.OpenACLUnsafe})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created", res.Path, res.Code)

	res, err = n.Submit(ctx, &core.Request{Session: sid, Seq: 2,
		Op: core.OpSetData, Path: "/config", Data: []byte("v2"), Version: 0})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("set, version now", res.Stat.Version)

	// Version 0 is stale now: the write is refused.
	res, err = n.Submit(ctx, &core.Request{Session: sid, Seq: 3,
		Op: core.OpSetData, Path: "/config", Data: []byte("v3"), Version: 0})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(errors.Is(grove.CodeError(res.Code), grove.ErrBadVersion), grove.CodeError(res.Code))

	// Resending a request (same session and Seq) returns its first result.
	res, err = n.Submit(ctx, &core.Request{Session: sid, Seq: 1,
		Op: core.OpCreate, Path: "/config", Data: []byte("v1"), ACL: grove.OpenACLUnsafe})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("retried create:", res.Path, res.Code)
	// Output:
	// created /config 0
	// set, version now 1
	// true grove: version conflict
	// retried create: /config 0
}

// Get reads the local state. The zero Read serves it as it is now; MinZxid
// and Linearizable ask for more.
func ExampleNode_Get() {
	n, done := exampleNode()
	defer done()
	ctx := context.Background()
	sid := exampleSession(ctx, n)
	exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 1,
		Op: core.OpCreate, Path: "/motd", Data: []byte("hello"), ACL: grove.OpenACLUnsafe})
	set := exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 2,
		Op: core.OpSetData, Path: "/motd", Data: []byte("hello, world"), Version: -1})

	data, stat, zxid, err := n.Get(ctx, core.Read{}, "/motd")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (version %d, %d bytes)\n", data, stat.Version, stat.DataLength)
	fmt.Println("read saw the set:", zxid >= uint64(set.Stat.Mzxid))

	_, _, _, err = n.Get(ctx, core.Read{}, "/nothing")
	fmt.Println("missing:", errors.Is(err, grove.ErrNoNode))
	// Output:
	// hello, world (version 1, 12 bytes)
	// read saw the set: true
	// missing: true
}

// Sequential creates append the parent's 10-digit counter; Children lists
// names in byte order, a page at a time with after and limit.
func ExampleNode_Children() {
	n, done := exampleNode()
	defer done()
	ctx := context.Background()
	sid := exampleSession(ctx, n)
	exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 1,
		Op: core.OpCreate, Path: "/queue", ACL: grove.OpenACLUnsafe})
	for i := range 3 {
		exampleWrite(ctx, n, &core.Request{Session: sid, Seq: uint64(2 + i),
			Op: core.OpCreate, Path: "/queue/item-", Mode: grove.ModePersistentSequential, ACL: grove.OpenACLUnsafe})
	}

	names, stat, more, _, err := n.Children(ctx, core.Read{}, "/queue", "", 2)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(names, "more:", more, "children:", stat.NumChildren)
	names, _, more, _, err = n.Children(ctx, core.Read{}, "/queue", names[len(names)-1], 2)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(names, "more:", more)
	// Output:
	// [item-0000000000 item-0000000001] more: true children: 3
	// [item-0000000002] more: false
}

// Exists sets a one-shot data watch even when the node is missing: it fires
// when the node is created. Events are delivered before the reply of the
// write that caused them.
func ExampleNode_Exists() {
	n, done := exampleNode()
	defer done()
	ctx := context.Background()
	sid := exampleSession(ctx, n)

	w := core.WatcherFunc(func(ev grove.Event) { fmt.Println("event:", ev.Type, ev.Path) })
	_, _, err := n.Exists(ctx, core.Read{Session: sid, Watch: w}, "/ready")
	fmt.Println("exists:", !errors.Is(err, grove.ErrNoNode))

	exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 1,
		Op: core.OpCreate, Path: "/ready", ACL: grove.OpenACLUnsafe})
	fmt.Println("created /ready")
	// The watch was one-shot: this change fires nothing.
	exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 2,
		Op: core.OpSetData, Path: "/ready", Data: []byte("go"), Version: -1})
	fmt.Println("set /ready")
	// Output:
	// exists: false
	// event: NodeCreated /ready
	// created /ready
	// set /ready
}

// A persistent recursive watch stays set and reports every change at or
// below its path (but no child-list events, as in ZooKeeper).
func ExampleNode_AddWatch() {
	n, done := exampleNode()
	defer done()
	ctx := context.Background()
	sid := exampleSession(ctx, n)

	w := core.WatcherFunc(func(ev grove.Event) { fmt.Println(ev.Type, ev.Path) })
	if _, err := n.AddWatch(sid, "/app", grove.WatchPersistentRecursive, nil, w); err != nil {
		log.Fatal(err)
	}
	exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 1,
		Op: core.OpCreate, Path: "/app", ACL: grove.OpenACLUnsafe})
	exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 2,
		Op: core.OpCreate, Path: "/app/db", Data: []byte("a"), ACL: grove.OpenACLUnsafe})
	exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 3,
		Op: core.OpSetData, Path: "/app/db", Data: []byte("b"), Version: -1})
	exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 4,
		Op: core.OpDelete, Path: "/app/db", Version: -1})
	exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 5,
		Op: core.OpCreate, Path: "/other", ACL: grove.OpenACLUnsafe})

	if err := n.RemoveWatches(sid, "/app", grove.WatchPersistentRecursive); err != nil {
		log.Fatal(err)
	}
	exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 6,
		Op: core.OpDelete, Path: "/app", Version: -1})
	fmt.Println("done")
	// Output:
	// NodeCreated /app
	// NodeCreated /app/db
	// NodeDataChanged /app/db
	// NodeDeleted /app/db
	// done
}

// Sync is a quorum barrier: once it returns, this node has applied every
// write committed before the call, on any node.
func ExampleNode_Sync() {
	n, done := exampleNode()
	defer done()
	ctx := context.Background()
	sid := exampleSession(ctx, n)
	res := exampleWrite(ctx, n, &core.Request{Session: sid, Seq: 1,
		Op: core.OpCreate, Path: "/flag", Data: []byte("up"), ACL: grove.OpenACLUnsafe})

	idx, err := n.Sync(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("barrier covers the create:", idx >= uint64(res.Stat.Czxid))
	fmt.Println("applied here:", n.AppliedIndex() >= idx)
	// Output:
	// barrier covers the create: true
	// applied here: true
}

// KeepAlive refreshes a session at the leader and says how long it has left;
// a session the leader does not know is reported expired.
func ExampleNode_KeepAlive() {
	n, done := exampleNode()
	defer done()
	ctx := context.Background()
	sid := exampleSession(ctx, n)

	left, err := n.KeepAlive(ctx, sid)
	fmt.Println(left, err)

	if err := n.CloseSession(ctx, sid, 1); err != nil {
		log.Fatal(err)
	}
	_, err = n.KeepAlive(ctx, sid)
	fmt.Println(errors.Is(err, grove.ErrSessionExpired))
	// Output:
	// 10s <nil>
	// true
}
