// Package fsm is Grove's replicated state machine: the znode tree, sessions,
// ephemerals and the per-session result cache, stored in bbolt buckets and
// changed only by applying log entries (internal/command) inside the caller's
// read-write transaction.
//
// Apply is deterministic: no clock, no randomness, no goroutines, no I/O
// beyond the given transaction. Times come from the entry header, ids from
// the entry index.
//
// Reads (Get, Children, ...) take a read transaction and may run
// concurrently with the single writer. Everything they return is a copy that
// stays valid after the transaction ends, except the data Walk passes to its
// callback.
//
// # Semantics
//
// The tree follows ZooKeeper: zxids are raft indexes, every change of one
// entry shares its zxid, checks run in ZooKeeper's order (see create,
// delete, setData, setACL and check in tree.go), and failed operations
// answer with ZooKeeper's codes in the Result rather than with an error.
// Each parent keeps a 64-bit child counter that moves on every child create
// and delete; sequential names are that counter formatted "%010d" and
// Stat.Cversion is its low 32 bits, so names never wrap. A multi is all or
// nothing: its operations run over an in-memory overlay that is written only
// if all of them succeed.
//
// # Storage
//
// All buckets are named "fsm.*" so they share a bbolt file with core's
// "raft.*" buckets. Integer keys are big endian.
//
//	fsm.nodes       path → node record (node.go)
//	fsm.children    parent + "\x00" + name → empty; a prefix scan lists one parent's children in byte order
//	fsm.ephemerals  session(8) + path → empty
//	fsm.reap        path → empty for every container and TTL node
//	fsm.sessions    session(8) → session record (session.go)
//	fsm.results     session(8) + seq(8) → command.Result, the last ResultWindow of each session
//	fsm.meta        "applied" → index(8) + term(8)
//
// # Caveats
//
// Two bounds ZooKeeper lacks keep one entry from breaking the store: a path
// longer than 32 KiB - 64 bytes (bbolt's key limit) is BadArguments, and an
// ACL of more than 1024 entries after "auth" expansion is InvalidACL. Data
// sizes, the number of identities and the size of a multi are the
// proposer's to limit.
package fsm

import (
	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// ResultWindow is how many of a session's most recent request results are
// kept for answering retries. A session must not have more requests than
// this in flight. It is part of the replicated semantics: never change it
// without a format version bump.
const ResultWindow = 1024

// Session is the replicated record of a session.
type Session struct {
	ID        uint64
	TimeoutMs int64
	Password  []byte
	LastSeq   uint64 // highest applied request sequence number
}

// Outcome is what applying one entry did, for the caller to act on after the
// transaction commits: answer the waiting request, fire watches, track
// sessions.
type Outcome struct {
	Kind    command.Kind
	Index   uint64 // the log index (zxid) of the entry applied
	Session uint64 // KindRequest: the requesting session; KindCreateSession: the new session id
	Seq     uint64 // KindRequest: the request sequence number
	// Result answers a KindRequest. Duplicate is true when the request had
	// already been applied and Result is the cached original.
	Result    *command.Result
	Duplicate bool
	// Events are the watch events the entry caused, in order.
	Events []grove.Event
	// EventACLs holds, for each event, the ACL of the node it is about as
	// the change left it (a deleted node: as it was): persistent watches
	// deliver an event only to watchers that may READ it.
	EventACLs [][]grove.ACL
	// Created is the session opened by a KindCreateSession entry.
	Created *Session
	// Closed lists the sessions the entry closed (close request or expiry).
	Closed []uint64
}

// ReapCandidate is a container or TTL node that may be due for reaping.
type ReapCandidate struct {
	Path  string
	Czxid int64
}
