package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/fsm"
)

// WatchSpec is one watch a client held on another server, for
// RestoreWatches.
type WatchSpec struct {
	Path string
	Kind grove.WatchKind
	// Existed says, for a WatchData watch, whether the node existed when
	// the watch was set (a Get, or an Exists that found it).
	Existed bool
}

// RestoreWatches moves a session's watches to this node after its client
// reconnected here. since is the last zxid the client has seen: every event
// up to it reached the client. A watch whose node changed after since fires
// at once, once, with the change the client missed (as ZooKeeper's
// setWatches does: a data watch gets NodeDataChanged, NodeCreated or
// NodeDeleted; a child watch NodeChildrenChanged or NodeDeleted); every
// other watch is registered on the current state, as if a read of it had
// set it. Persistent watches stay registered and also report a missed
// change of their own node; changes strictly below a recursively watched
// node while the client was away are not reconstructed.
//
// Like a read, it first waits until this node has applied since. It returns
// the zxid of the state it compared with. ids are the session's identities
// on its new connection: a persistent watch reports events, missed ones
// included, only for nodes they may READ.
func (n *Node) RestoreWatches(ctx context.Context, session, since uint64, specs []WatchSpec, ids []grove.Identity, w Watcher) (uint64, error) {
	if w == nil || session == 0 {
		return 0, fmt.Errorf("core: restore watches needs a session and a watcher: %w", grove.ErrBadArguments)
	}
	for _, s := range specs {
		if err := grove.ValidatePath(s.Path); err != nil {
			return 0, err
		}
		if s.Kind < grove.WatchData || s.Kind > grove.WatchPersistentRecursive {
			return 0, fmt.Errorf("core: watch kind %d: %w", s.Kind, grove.ErrBadArguments)
		}
	}
	if err := n.WaitApplied(ctx, since); err != nil {
		return 0, err
	}
	wm := n.watches
	for {
		wm.mu.Lock()
		var zxid uint64
		var fired []grove.Event
		seen := map[grove.Event]struct{}{}
		err := n.readState(func(tx fsm.Tx) error {
			idx, _, err := fsm.Applied(tx)
			if err != nil {
				return err
			}
			zxid = idx
			if d, _ := n.dispatched.get(); d < zxid {
				return errBehind
			}
			for _, s := range specs {
				st, err := fsm.Exists(tx, s.Path)
				exists := err == nil
				if err != nil && !errors.Is(err, grove.ErrNoNode) {
					return err
				}
				evs := missed(s, exists, st, since, zxid)
				if len(evs) > 0 && s.Kind >= grove.WatchPersistent {
					acl, _, err := fsm.ACLOf(tx, s.Path)
					if err != nil {
						return err
					}
					if !mayRead(acl, ids) {
						evs = nil
					}
				}
				for _, ev := range evs {
					if _, dup := seen[ev]; !dup { // once per change, as dispatch does
						seen[ev] = struct{}{}
						fired = append(fired, ev)
					}
				}
				if len(evs) == 0 || s.Kind >= grove.WatchPersistent {
					wm.addLocked(session, s.Path, s.Kind, zxid, ids, w)
				}
			}
			return nil
		})
		if err == nil {
			wm.bindLocked(session, w)
			for _, ev := range fired {
				w.Deliver(ev) // under the lock: before any later event
			}
		}
		wm.mu.Unlock()
		if !errors.Is(err, errBehind) {
			return zxid, err
		}
		if err := n.WaitApplied(ctx, zxid); err != nil {
			return 0, err
		}
	}
}

// errBehind says the watch events of the state read are not all
// dispatched yet.
var errBehind = errors.New("core: watch events not yet dispatched")

// missed returns the events a watch missed between since and now (the node
// exists with stat st, or not). Synthesized events carry the zxid of the
// change where the stat has it, else the current zxid.
func missed(s WatchSpec, exists bool, st grove.Stat, since, now uint64) []grove.Event {
	after := func(z int64) bool { return z > 0 && uint64(z) > since }
	ev := func(t grove.EventType, z int64) grove.Event { return grove.Event{Type: t, Path: s.Path, Zxid: z} }
	switch s.Kind {
	case grove.WatchData:
		switch {
		case !exists && s.Existed:
			return []grove.Event{ev(grove.EventNodeDeleted, int64(now))}
		case exists && !s.Existed:
			return []grove.Event{ev(grove.EventNodeCreated, st.Czxid)}
		case exists && after(st.Mzxid):
			return []grove.Event{ev(grove.EventNodeDataChanged, st.Mzxid)}
		}
	case grove.WatchChildren:
		switch {
		case !exists:
			return []grove.Event{ev(grove.EventNodeDeleted, int64(now))}
		case after(st.Pzxid):
			return []grove.Event{ev(grove.EventNodeChildrenChanged, st.Pzxid)}
		}
	default: // persistent: the node's own missed changes
		if !exists {
			return nil
		}
		var evs []grove.Event
		switch {
		case after(st.Czxid):
			evs = append(evs, ev(grove.EventNodeCreated, st.Czxid))
		case after(st.Mzxid):
			evs = append(evs, ev(grove.EventNodeDataChanged, st.Mzxid))
		}
		if s.Kind == grove.WatchPersistent && after(st.Pzxid) && st.Pzxid != st.Czxid {
			evs = append(evs, ev(grove.EventNodeChildrenChanged, st.Pzxid))
		}
		return evs
	}
	return nil
}
