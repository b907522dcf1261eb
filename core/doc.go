// Package core is Grove's engine: a replicated, durable znode store. A Node
// is one raft replica (go.etcd.io/raft/v3, PreVote and CheckQuorum on) with
// one bbolt data file that holds the raft log, the hard and conf state, and
// the applied state machine (package internal/fsm: znodes, sessions,
// ephemerals, the per-session result cache, the applied index).
//
// # Usage
//
//	cfg := core.DefaultConfig()
//	cfg.ID, cfg.DataDir = 1, dir
//	cfg.Peers = []core.Peer{{ID: 1}}          // a one-node cluster
//	n, err := core.StartNode(ctx, cfg)
//	defer n.Close()
//	s, err := n.CreateSession(ctx, 10*time.Second)
//	res, err := n.Submit(ctx, &core.Request{Session: s.ID, Seq: 1,
//		Op: core.OpCreate, Path: "/a", Data: []byte("x"), ACL: grove.OpenACLUnsafe})
//	data, stat, zxid, err := n.Get(ctx, core.Read{}, "/a")
//
// Client protocols (the native client front and the ZooKeeper-wire front)
// drive the same request pipeline: Submit for writes (ordered and
// deduplicated by the session's sequence number), the read methods with a
// Read (identities, minimum zxid, linearizable, watch), KeepAlive and Touch
// for session liveness, AddWatch/RemoveWatches for persistent watches.
//
// # The loop
//
// One goroutine (run, in loop.go) owns the raft RawNode; every other method
// reaches it through a channel and selects on its ctx and the node's done
// channel. For each Ready the loop:
//
//  1. as leader, sends its messages first, so its disk write overlaps the
//     followers' (Raft thesis §10.2.1);
//  2. in one bbolt read-write transaction: installs a received snapshot,
//     truncates the log if due, appends the new entries, saves the hard
//     state, and applies the committed entries to the state machine; then
//     commits with fsync. Many proposals share this one fsync (group
//     commit): proposals are drained from a channel into one raft message;
//  3. as follower or candidate, sends its messages only now;
//  4. delivers the watch events of the applied entries, then answers the
//     requests waiting for them, so a session sees an event before any reply
//     that shows the new state;
//  5. calls Advance.
//
// A failed bbolt write stops the node (Err reports why, Done closes); it
// never carries on with state it could not persist.
//
// # Determinism
//
// Applying is deterministic: the leader stamps its clock into each entry as
// it accepts it (forwarded proposals included), sessions are numbered by the
// index of their creating entry, sequence suffixes come from the parent's
// 64-bit child counter, and session expiry and container/TTL reaping are
// decided by the leader and carried as entries.
//
// # Sessions
//
// The leader keeps every session's deadline in memory; followers relay
// touches (batched each tick) and keep-alives to it. A new leader gives every
// session a fresh full timeout. A session request carries a sequence number:
// requests apply in order, and a retried one gets its original result.
//
// # Reads
//
// Reads run on a bbolt read transaction of the local state and report the
// zxid (applied index) they saw. Read.MinZxid makes a read wait for the
// node to catch up to what the session already saw; Read.Linearizable and
// Sync are a raft ReadIndex quorum barrier.
//
// # Snapshots
//
// The log is truncated behind the applied index every SnapshotEntries
// entries (keeping CatchUpEntries). A follower that needs entries no longer
// in the log gets a snapshot: the leader streams a consistent bbolt read
// transaction through Transport.SendSnapshot; the follower stores and checks
// it and installs it atomically in a Ready transaction.
//
// # Caveats
//
// After a snapshot install the node derives watch events by comparing the
// watched paths before and after; changes strictly below a recursively
// watched path are not reported by that install.
package core
