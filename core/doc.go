// Package core is Grove's engine: a replicated, durable znode store. A Node
// is one raft replica (go.etcd.io/raft/v3, PreVote and CheckQuorum on) with
// one bbolt data file that holds the raft log, the hard and conf state, and
// the applied state machine (package internal/fsm: znodes, sessions,
// ephemerals, the per-session result cache, the applied index), written in
// batches behind the log (see Storage).
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
//  1. sends its messages to peers at once: as leader, its own disk write so
//     overlaps the followers' (Raft thesis §10.2.1); everything that must
//     wait for durability (a follower's acknowledgement, a vote) travels
//     as a response inside an append (raft's AsyncStorageWrites);
//  2. applies the committed entries raft hands out (only entries already
//     durable here) to the in-memory state layers (see Storage), delivers
//     their watch events and then answers the requests waiting for them,
//     so a session sees an event before any reply that shows the new
//     state;
//  3. queues the appends (entries, hard state) for the log writer
//     (writer.go), a goroutine that makes them durable in order, batching
//     whatever queued up while the previous batch synced into one bbolt
//     transaction and one fsync (group commit). When a batch is durable
//     the loop records it in raft's in-memory log and delivers the
//     responses raft attached to it. A received snapshot is installed by
//     the loop itself, after the writer has finished what came before;
//  4. queues a due log truncation, and a state layer due for bbolt, behind
//     the appends.
//
// The loop never waits for the disk: ticks, heartbeats, proposals, reads
// and applies go on while the writer syncs, so an fsync stall cannot delay
// a heartbeat. A failed bbolt write stops the node (Err reports why, Done
// closes); it never carries on with state it could not persist.
//
// # Storage
//
// The data file (grove.db) holds raft's log, hard state and peer addresses,
// and the applied state (package internal/fsm) with its applied index and
// the raft conf state it belongs to. What is durable when:
//
//   - A write is answered once its entry is committed (fsynced in the log
//     of a quorum, this node's included) and applied to the state reads
//     see. It is never answered before commit. The only fsync it waits for
//     is its log append, on the leader and on the followers that make the
//     quorum (step 3).
//   - Applying changes memory only: committed entries go into an
//     fsm.Layer, an ordered map of the changed keys over bbolt's last
//     flushed state. Reads, watch registration and the result cache
//     (retries) read through the layers (Node.readState), so they see every
//     applied write at once, in log order.
//   - A layer is written to bbolt once it holds 4,096 changes or 8 MiB, or
//     100 ms after its first change: the loop freezes it and queues it for
//     the log writer, which writes it in the same transaction as the
//     appends queued with it (no fsync of its own), also when the node is
//     idle or a backup (Node.View) wants the file complete; at stop the
//     loop writes the last one itself. That write carries the layer's
//     applied index and the newest hard state, so the file's commit index
//     is never below its applied index.
//   - The log is truncated only behind the flushed ("durable") applied
//     index, so every applied entry not yet in bbolt's state is still in
//     the log.
//
// A crash at any point therefore leaves a log holding every acknowledged
// write and a state at some durable applied index D at or below it; the
// two are in one file, so no crash can tear them apart. Restart opens the
// state at D and raft replays the committed log after D (Config.Applied =
// D): entries between D and the crash are applied again, exactly once,
// from state D. Conf changes are flushed with the state they belong to,
// so they too replay from D.
//
// A snapshot sent to a follower is one bbolt read transaction of the
// flushed state at its durable index (the log after it is kept); a
// received snapshot is installed in one transaction while reads wait,
// and the layers (older state) are discarded when it commits.
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
// Reads run on a bbolt read transaction of the local state seen through the
// unflushed layers, and report the zxid (applied index) they saw. Read.MinZxid makes a read wait for the
// node to catch up to what the session already saw; Read.Linearizable and
// Sync are a raft ReadIndex quorum barrier.
//
// # Snapshots
//
// The log is truncated behind the durable applied index every
// SnapshotEntries entries (keeping CatchUpEntries). A follower that needs entries no longer
// in the log gets a snapshot: the leader streams a consistent bbolt read
// transaction through Transport.SendSnapshot; the follower stores and checks
// it and installs it atomically in one transaction.
//
// # Caveats
//
// After a snapshot install the node derives watch events by comparing the
// watched paths before and after; changes strictly below a recursively
// watched path are not reported by that install.
package core
