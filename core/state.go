package core

import (
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove/internal/fsm"
)

// The applied state is the state file's fsm buckets (bbolt) plus the
// layers of changes applied since the last flush (fsm.Layer), oldest
// first. The loop applies committed entries into the newest layer and
// answers them at once; the layers reach the state file in batches,
// frozen by the loop and committed by the state writer off the critical
// path; at stop the loop writes the last one itself (flushNow). See
// doc.go, "Storage".
type appliedState struct {
	since time.Time // when the newest layer got its first change (loop only)
	// durable is the applied index bbolt holds: restart resumes there, and
	// the log is never truncated past it. Loop only.
	durable uint64
}

// crashHook, when set (by the crash tests, before any node starts), is
// called at the points between a log commit and the state flush that
// follows; the test's hook kills the process at one of them. Nil in
// production: each point costs one comparison.
var crashHook func(point string)

// crashPoint calls crashHook.
func crashPoint(point string) {
	if crashHook != nil {
		crashHook(point)
	}
}

// Flush thresholds: the newest layer is written to bbolt once it holds this
// many changes or bytes, or has been pending this long. They bound the
// memory the layers take and the log a restart replays, not durability:
// every applied entry is in the fsynced log already.
const (
	flushChanges = 4096
	flushBytes   = 8 << 20
)

// flushInterval is the time bound; a variable so that a test can hold
// applied state in memory (SetFlushInterval).
var flushInterval = 100 * time.Millisecond

// readState runs fn on the state reads see: every applied change, flushed
// or not. fn must not keep tx or slices from it, and must not write.
func (n *Node) readState(fn func(tx fsm.Tx) error) error {
	n.stateMu.RLock()
	defer n.stateMu.RUnlock()
	return n.data().View(func(btx *bbolt.Tx) error {
		return fn(fsm.NewView(fsm.Bolt(btx), n.layers...))
	})
}

// applyState runs fn on a writable view of the state: changes go to the
// newest layer. Loop only; readers wait while it runs.
func (n *Node) applyState(fn func(tx fsm.Tx) error) error {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	top := n.layers[len(n.layers)-1]
	if top.Empty() {
		n.state.since = time.Now()
	}
	btx, err := n.data().Begin(false)
	if err != nil {
		return fmt.Errorf("core: read state: %w", err)
	}
	defer func() { _ = btx.Rollback() }()
	return fn(fsm.NewView(fsm.Bolt(btx), n.layers...))
}

// flushDue reports whether the newest layer should go to bbolt now.
func (n *Node) flushDue() bool {
	top := n.layers[len(n.layers)-1] // only the loop changes the slice
	if top.Empty() {
		return false
	}
	changes, bytes := top.Changes()
	return changes >= flushChanges || bytes >= flushBytes || time.Since(n.state.since) >= flushInterval
}

// freeze starts a new layer for the applies to come and returns the layer
// to flush, with the applied index it brings bbolt to. Loop only, between
// applies: the applied index is then that of the layer's last entry.
func (n *Node) freeze() (*fsm.Layer, uint64) {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	frozen := n.layers[len(n.layers)-1]
	n.layers = append(n.layers, fsm.NewLayer())
	return frozen, n.applied.Load()
}

// flushed drops the oldest layer once a committed transaction holds it:
// bbolt now has its changes. Readers that opened bbolt before the commit
// still had the layer; those after see its changes in bbolt (where the
// layer, while still listed, only repeated them).
func (n *Node) flushed(index uint64) {
	n.stateMu.Lock()
	n.layers = n.layers[1:]
	n.stateMu.Unlock()
	if index > n.state.durable {
		n.state.durable = index
	}
}

// flushNow writes the pending layer to the state file in a transaction of
// its own, when the node stops, after both writers have exited (loop only).
func (n *Node) flushNow() error {
	if n.layers[len(n.layers)-1].Empty() {
		return nil
	}
	frozen, index := n.freeze()
	if err := n.data().Update(frozen.FlushTo); err != nil {
		return fmt.Errorf("core: flush state: %w", err)
	}
	n.flushed(index)
	return nil
}

// flushPending asks the loop to write every applied change to bbolt and
// waits for it. It returns grove.ErrStopped once the node has stopped.
func (n *Node) flushPending() error {
	errc := make(chan error, 1)
	select {
	case n.flushc <- errc:
	case <-n.donec:
		return n.stopErr()
	}
	select {
	case err := <-errc:
		return err
	case <-n.donec:
		return n.stopErr()
	}
}

// discardLayersLocked forgets every layer after a snapshot install replaced the
// state in bbolt (they held older state). The caller holds stateMu.
func (n *Node) discardLayersLocked() {
	n.layers = []*fsm.Layer{fsm.NewLayer()}
}
