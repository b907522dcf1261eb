package core

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/fsm"
)

// Read says how a read is served. The zero value reads the local state as
// it is now.
type Read struct {
	// Session owns a watch set by the read.
	Session uint64
	// Identities are the reader's authenticated identities, for ACL checks.
	Identities []grove.Identity
	// MinZxid makes the read wait until this node has applied at least this
	// zxid, so a session never sees state older than it already saw (pass
	// the highest zxid the session has seen).
	MinZxid uint64
	// Linearizable makes the read a quorum barrier first (see Sync): it then
	// sees every write acknowledged before it started, on any node.
	Linearizable bool
	// Watch, if non-nil, sets a one-shot watch for Session: a data watch for
	// Get and Exists (also on a missing node, firing when it is created), a
	// child watch for Children. Events go to Watch.
	Watch Watcher
}

// Sync is a quorum barrier (raft ReadIndex): when it returns, this node has
// applied every write committed anywhere before Sync was called. It returns
// the index it waited for. It holds through an election until ctx ends.
func (n *Node) Sync(ctx context.Context) (uint64, error) {
	for {
		ch := make(chan uint64, 1)
		select {
		case n.readc <- ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-n.donec:
			return 0, n.stopErr()
		}
		t := time.NewTimer(n.cfg.TickInterval * time.Duration(n.cfg.ElectionTicks))
		select {
		case idx := <-ch:
			t.Stop()
			if err := n.WaitApplied(ctx, idx); err != nil {
				return 0, err
			}
			return idx, nil
		case <-t.C:
			// The request was lost (no leader or a leader change): ask again.
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-n.donec:
			t.Stop()
			return 0, n.stopErr()
		}
	}
}

// readIndex batches a reader into the next ReadIndex request (loop).
func (n *Node) readIndex(first chan uint64) {
	ls := &n.loopState
	ls.nextReadID++
	b := &readBatch{waiters: []chan uint64{first}, tick: ls.ticks}
	for len(b.waiters) < 4096 {
		select {
		case w := <-n.readc:
			b.waiters = append(b.waiters, w)
			continue
		default:
		}
		break
	}
	ls.readBatches[ls.nextReadID] = b
	// The request context is this process's random incarnation plus the
	// batch id: a leader's late answer to a read of an earlier incarnation
	// of this node must never match a read of this one.
	var ctx [16]byte
	binary.BigEndian.PutUint64(ctx[:8], n.incarnation)
	binary.BigEndian.PutUint64(ctx[8:], ls.nextReadID)
	n.rn.ReadIndex(ctx[:])
}

// answerReads hands read indexes to their batches (loop).
func (n *Node) answerReads(states []raft.ReadState) {
	for _, rs := range states {
		if len(rs.RequestCtx) != 16 || binary.BigEndian.Uint64(rs.RequestCtx[:8]) != n.incarnation {
			continue
		}
		id := binary.BigEndian.Uint64(rs.RequestCtx[8:])
		b := n.loopState.readBatches[id]
		delete(n.loopState.readBatches, id)
		if b == nil {
			continue
		}
		for _, w := range b.waiters {
			w <- rs.Index
		}
	}
}

// pruneReads forgets batches whose answer never came; their readers retry.
func (n *Node) pruneReads() {
	for id, b := range n.loopState.readBatches {
		if n.loopState.ticks-b.tick > uint64(4*n.cfg.ElectionTicks) {
			delete(n.loopState.readBatches, id)
		}
	}
}

// prepare waits until the read may be served: after a barrier if it is
// linearizable, and after MinZxid is applied.
func (n *Node) prepare(ctx context.Context, r *Read) error {
	if r.Linearizable {
		if _, err := n.Sync(ctx); err != nil {
			return err
		}
	}
	if r.MinZxid > 0 {
		return n.WaitApplied(ctx, r.MinZxid)
	}
	return nil
}

// view runs fn in a read transaction and returns the zxid it saw. If the
// read sets a watch, the registration and the read happen under the watch
// lock, so no change after the read can be missed and none before it fires.
// It then waits until the watch events up to that zxid are delivered, so a
// session sees an event before the data that triggered it.
func (n *Node) view(ctx context.Context, r *Read, reg *registration, fn func(tx fsm.Tx) error) (uint64, error) {
	if err := n.prepare(ctx, r); err != nil {
		return 0, err
	}
	var zxid uint64
	read := func() error {
		return n.readState(func(tx fsm.Tx) error {
			idx, _, err := fsm.Applied(tx)
			if err != nil {
				return err
			}
			zxid = idx
			return fn(tx)
		})
	}
	var err error
	if reg != nil && r.Watch != nil {
		reg.ids = r.Identities // its events go out only for nodes they may READ
		// Register only once every event up to the state read has been
		// dispatched: a watch set on state Z must fire for the first change
		// after Z, and a one-shot watch pending from an earlier read must
		// fire for its own change first. Holding the watch lock keeps later
		// events from being dispatched between the read and the
		// registration.
		for {
			behind := false
			err = n.watches.registerWith(reg, r.Watch, func() (uint64, error) {
				if err := read(); err != nil {
					return zxid, err
				}
				if d, _ := n.dispatched.get(); d < zxid {
					behind, reg.keep = true, false
				}
				return zxid, nil
			})
			if err != nil || !behind {
				break
			}
			if err = n.WaitApplied(ctx, zxid); err != nil {
				return zxid, err
			}
		}
	} else {
		err = read()
	}
	if err != nil {
		return zxid, err
	}
	return zxid, n.WaitApplied(ctx, zxid)
}

// Get returns a znode's data and Stat and the zxid of the state read. It
// needs READ permission. Errors: grove.ErrNoNode, grove.ErrNoAuth,
// grove.ErrBadArguments for a bad path.
func (n *Node) Get(ctx context.Context, r Read, path string) (data []byte, stat grove.Stat, zxid uint64, err error) {
	if err := grove.ValidatePath(path); err != nil {
		return nil, stat, 0, err
	}
	reg := &registration{session: r.Session, path: path, kind: grove.WatchData}
	zxid, err = n.view(ctx, &r, reg, func(tx fsm.Tx) error {
		var err error
		data, stat, err = fsm.Get(tx, path, r.Identities)
		reg.keep = err == nil
		return err
	})
	return data, stat, zxid, err
}

// Exists returns a znode's Stat (grove.ErrNoNode if it is missing). A watch
// is set either way: on a missing node it fires when the node is created.
func (n *Node) Exists(ctx context.Context, r Read, path string) (stat grove.Stat, zxid uint64, err error) {
	if err := grove.ValidatePath(path); err != nil {
		return stat, 0, err
	}
	reg := &registration{session: r.Session, path: path, kind: grove.WatchData}
	zxid, err = n.view(ctx, &r, reg, func(tx fsm.Tx) error {
		var err error
		stat, err = fsm.Exists(tx, path)
		reg.keep = err == nil || errors.Is(err, grove.ErrNoNode)
		return err
	})
	return stat, zxid, err
}

// Children lists a znode's children in byte order, at most limit of them
// (limit <= 0: all) starting after the name after, with the parent's Stat.
// more reports whether names remain. It needs READ permission.
func (n *Node) Children(ctx context.Context, r Read, path, after string, limit int) (names []string, stat grove.Stat, more bool, zxid uint64, err error) {
	if err := grove.ValidatePath(path); err != nil {
		return nil, stat, false, 0, err
	}
	reg := &registration{session: r.Session, path: path, kind: grove.WatchChildren}
	zxid, err = n.view(ctx, &r, reg, func(tx fsm.Tx) error {
		var err error
		names, stat, more, err = fsm.Children(tx, path, r.Identities, after, limit)
		reg.keep = err == nil
		return err
	})
	return names, stat, more, zxid, err
}

// GetACL returns a znode's ACL and Stat. Digest ids are redacted unless the
// reader has ADMIN permission, as in ZooKeeper.
func (n *Node) GetACL(ctx context.Context, r Read, path string) (acl []grove.ACL, stat grove.Stat, zxid uint64, err error) {
	if err := grove.ValidatePath(path); err != nil {
		return nil, stat, 0, err
	}
	zxid, err = n.view(ctx, &r, nil, func(tx fsm.Tx) error {
		var err error
		acl, stat, err = fsm.GetACL(tx, path, r.Identities)
		return err
	})
	return acl, stat, zxid, err
}

// CountDescendants returns the number of znodes below path (ZooKeeper's
// getAllChildrenNumber). It needs READ permission.
func (n *Node) CountDescendants(ctx context.Context, r Read, path string) (count int64, zxid uint64, err error) {
	if err := grove.ValidatePath(path); err != nil {
		return 0, 0, err
	}
	zxid, err = n.view(ctx, &r, nil, func(tx fsm.Tx) error {
		var err error
		count, err = fsm.CountDescendants(tx, path, r.Identities)
		return err
	})
	return count, zxid, err
}

// Ephemerals returns the paths of r.Session's ephemeral znodes that start
// with prefix, sorted.
func (n *Node) Ephemerals(ctx context.Context, r Read, prefix string) (paths []string, zxid uint64, err error) {
	zxid, err = n.view(ctx, &r, nil, func(tx fsm.Tx) error {
		var err error
		paths, err = fsm.Ephemerals(tx, r.Session, prefix)
		return err
	})
	return paths, zxid, err
}

// Digest returns a SHA-256 digest of the replicated state and the applied
// index it was taken at. Nodes that applied the same log have equal digests.
func (n *Node) Digest() (digest [32]byte, applied uint64, err error) {
	err = n.readState(func(tx fsm.Tx) error {
		var err error
		if applied, _, err = fsm.Applied(tx); err != nil {
			return err
		}
		digest, err = fsm.Digest(tx)
		return err
	})
	return digest, applied, err
}

// View runs fn in a read transaction of the node's data file, for tools
// that walk the whole state (package fsm's read functions). It first
// writes the applied changes still held in memory to the file, so the
// transaction holds every change applied before the call. fn must not keep
// the transaction or slices from it. It returns grove.ErrStopped after
// Close.
func (n *Node) View(fn func(tx *bbolt.Tx) error) error {
	if err := n.flushPending(); err != nil {
		return err
	}
	return n.data().View(fn)
}
