package client

import (
	"context"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// Backend is the request pipeline a Session drives: the local node for an
// embedded session (package core implements it), a network connection for
// a remote one. Implementations are safe for concurrent use. Only Grove's
// own packages implement it: its types come from an internal package.
type Backend interface {
	// OpenSession creates a session with about the given timeout and
	// returns its id, password and the negotiated timeout. Events of the
	// session's watches go to onEvent, which must not block.
	OpenSession(ctx context.Context, timeout time.Duration, onEvent func(grove.Event)) (id uint64, password []byte, negotiated time.Duration, err error)
	// Begin proposes a write without waiting for it; writes begun in order
	// take effect in that order.
	Begin(ctx context.Context, req *command.Request) (Pending, error)
	// Read serves a read (see ReadRequest).
	Read(ctx context.Context, r *ReadRequest) (*ReadResult, error)
	// Sync is a quorum barrier; it returns the index waited for.
	Sync(ctx context.Context) (uint64, error)
	// KeepAlive refreshes the session and returns the time it has left.
	KeepAlive(ctx context.Context, session uint64) (time.Duration, error)
	// AddWatch sets a persistent (recursive) watch for a watcher with ids
	// (it gets events only for nodes ids may READ; a remote server uses the
	// connection's identities instead); RemoveWatches removes watches of
	// kind (0: all) on path.
	AddWatch(ctx context.Context, session uint64, path string, kind grove.WatchKind, ids []grove.Identity) error
	RemoveWatches(ctx context.Context, session uint64, path string, kind grove.WatchKind) error
	// Authenticate resolves credentials into an identity.
	Authenticate(ctx context.Context, scheme string, cred []byte) (grove.Identity, error)
	// Release forgets the session's watches and event handler on this
	// backend (the session is closed or gone).
	Release(session uint64)
}

// Pending is a begun write.
type Pending interface {
	// Wait returns the write's result once applied. Errors are for the
	// pipeline (ctx, a stopped node); the operation's own error is in the
	// result's Code.
	Wait(ctx context.Context) (*command.Result, error)
	// Cancel stops waiting; the write may still apply.
	Cancel()
}

// ReadKind says what a ReadRequest reads.
type ReadKind int

// Read kinds.
const (
	ReadGet ReadKind = iota + 1
	ReadExists
	ReadChildren
	ReadACL
	ReadCount
	ReadEphemerals
)

// ReadRequest is one read for a Backend.
type ReadRequest struct {
	Kind         ReadKind
	Session      uint64
	Identities   []grove.Identity
	Path         string // the path, or the prefix for ReadEphemerals
	After        string // ReadChildren: list names after this one
	Limit        int    // ReadChildren: at most this many (0: all)
	MinZxid      uint64 // never serve state older than this
	Linearizable bool   // quorum barrier first
	Watch        bool   // set a one-shot watch (data for Get/Exists, child for Children)
}

// ReadResult is the answer to a ReadRequest.
type ReadResult struct {
	Data   []byte
	Stat   grove.Stat
	Exists bool     // ReadExists: whether the node exists
	Names  []string // ReadChildren, ReadEphemerals
	More   bool     // ReadChildren: names remain after Names
	ACL    []grove.ACL
	Count  int64
	Zxid   uint64 // the state the read saw
}
