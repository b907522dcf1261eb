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
// concurrently with the single writer.
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
	Session uint64 // KindRequest: the requesting session; KindCreateSession: the new session id
	Seq     uint64 // KindRequest: the request sequence number
	// Result answers a KindRequest. Duplicate is true when the request had
	// already been applied and Result is the cached original.
	Result    *command.Result
	Duplicate bool
	// Events are the watch events the entry caused, in order.
	Events []grove.Event
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
