// Package core is Grove's engine: a replicated, durable znode store. A Node
// is one raft replica (go.etcd.io/raft/v3, PreVote and CheckQuorum on) with
// two files in its data dir: a write-ahead log (wal/, package internal/wal)
// that holds raft's entries and hard state, and a bbolt state file
// (grove.db) that holds the applied state machine (package internal/fsm:
// znodes, sessions, ephemerals, the per-session result cache, the applied
// index, the conf state and peer addresses), written in batches behind the
// log (see Storage).
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
//     whatever queued up while the previous batch synced into one write
//     and one fdatasync of the log (group commit). When a batch is durable
//     the loop records it in raft's in-memory log and delivers the
//     responses raft attached to it. An append with nothing to persist
//     (only a new commit index, which is never synced) while the writer
//     is idle is taken in the loop at once: every commit makes one on
//     each node, and the hand-off to the writer and back would only add
//     latency. A received snapshot is installed by the loop itself, after
//     the writer has finished what came before;
//  4. queues a due log truncation behind the appends, and a state layer
//     due for the state file for the state writer, a second goroutine.
//
// The loop never waits for the disk: ticks, heartbeats, proposals, reads
// and applies go on while either writer syncs, so an fsync stall cannot
// delay a heartbeat. A failed write stops the node (Err reports why, Done
// closes); it never carries on with state it could not persist.
//
// # Storage
//
// A node's data dir holds two files (Config.DataDir):
//
//   - wal/, the log: raft's entries and hard state as checksummed records
//     in preallocated segment files (package internal/wal). Appending a
//     batch costs one write and one fdatasync; that is the only fsync a
//     write waits for, as ZooKeeper's transaction log is.
//   - grove.db, the state: a bbolt file with the applied state (package
//     internal/fsm), its applied index, the raft conf state it belongs to
//     and the peers' addresses, written by the state writer in batches off
//     the critical path.
//
// This departs from DESIGN.md's "the log is its own bbolt file": a bbolt
// commit costs two fdatasyncs (its pages, then its meta page) and a page
// write for each changed branch of its tree, where appending to a file
// whose blocks are preallocated costs one write and one fdatasync
// (measured: about 0.14 ms per fdatasync alone, 0.3 ms with three servers
// on one disk; docs/performance.md has the before and after).
// What the design asks of the log (one synced append per Ready, group
// commit, truncation behind the durable applied index) holds unchanged.
//
// What is durable when:
//
//   - A write is answered once its entry is committed (fsynced in the log
//     of a quorum, this node's included) and applied to the state reads
//     see. It is never answered before commit.
//   - Applying changes memory only: committed entries go into an
//     fsm.Layer, an ordered map of the changed keys over the state file's
//     last committed state. Reads, watch registration and the result cache
//     (retries) read through the layers (Node.readState), so they see every
//     applied write at once, in log order.
//   - A layer is written to the state file once it holds 4,096 changes or
//     8 MiB, or 100 ms after its first change: the loop freezes it and
//     queues it for the state writer, which commits whatever layers queued
//     up in one bbolt transaction (with its fsyncs, which no write waits
//     for), also when the node is idle or a backup (Node.View) wants the
//     file complete; at stop the loop writes the last one itself. The
//     transaction carries the layers' applied index: that is the durable
//     applied index D.
//   - The log is truncated (whole segments) only behind D, so every
//     applied entry the state file lacks is still in the log.
//   - The hard state is written to the log when its term or vote changes
//     (before any message that depends on it is sent); a commit index that
//     alone moved is not synced: raft learns it again from the leader, and
//     restart raises it to D.
//
// A crash at any point therefore leaves a log holding every acknowledged
// write (a torn record at its tail is one that was never acknowledged,
// and is cut off) and a state at some D at or below the log's end.
// Restart opens the state at D, loads the log after D and hands raft D as
// Config.Applied: entries between D and the crash are applied again,
// exactly once, from state D. Conf changes are in the state with the
// index they belong to, so they too replay from D.
//
// A snapshot sent to a follower is one bbolt read transaction of the
// state file at D (the log after it is kept). A received snapshot is
// installed in one state-file transaction while reads wait, the layers
// (older state) are discarded when it commits, and then the log restarts
// after the snapshot (a new segment with the snapshot's hard state, older
// segments removed). A crash between the two leaves the snapshot's state
// beside the old log; restart drops the log's entries that do not follow
// the snapshot's index and term, restarts the log after it (finishing
// what the crash cut short), and raft fetches what it lacks from the
// leader.
//
// The crash tests (crash_test.go) kill a child process with SIGKILL at
// each of these points: an answer sent before its own Ready's log sync,
// after a log sync, with a layer frozen and not yet written, inside a
// state transaction, after it, while idle, and between a snapshot's state
// install and the log restart; restart must show every acknowledged write
// and equal digests on every node.
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
// Reads run on a bbolt read transaction of the local state seen through
// the unflushed layers, and report the zxid (applied index) they saw.
// Read.MinZxid makes a read wait for the node to catch up to what the
// session already saw; Read.Linearizable and Sync are a raft ReadIndex
// quorum barrier.
//
// # Snapshots
//
// The log is truncated behind the durable applied index every
// SnapshotEntries entries (keeping CatchUpEntries). A follower that needs
// entries no longer in the log gets a snapshot: the leader streams a
// consistent bbolt read transaction through Transport.SendSnapshot; the
// follower stores and checks it and installs it as Storage says.
//
// # Caveats
//
// After a snapshot install the node derives watch events by comparing the
// watched paths before and after; changes strictly below a recursively
// watched path are not reported by that install.
package core
