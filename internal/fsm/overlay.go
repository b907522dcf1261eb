package fsm

import (
	"fmt"
	"slices"
)

// overlay buffers changes to the znode tree and its indexes in memory over a
// transaction. Operations read through it, so they see the changes of earlier
// operations of the same entry; flush writes everything at once, and an
// overlay that is dropped leaves the store untouched. This is how a failed
// multi rolls back: bbolt has no savepoints.
type overlay struct {
	st *store
	// nodes caches every node read or written; a nil value is a node that
	// does not exist (or was deleted). Only paths in dirty are written back.
	nodes map[string]*node
	dirty map[string]struct{}
	// Index changes: key → true to add, false to remove. Allocated on
	// first use; set them with index.
	children   map[string]bool
	ephemerals map[string]bool
	reap       map[string]bool
}

// newOverlay returns the applier's overlay, emptied, for the next
// operation: an entry applies one operation after another, so one overlay
// (and its maps) serves them all.
func (a *applier) newOverlay() *overlay {
	a.ovSpace.reset(a.st)
	return &a.ovSpace
}

// reset empties o over st, keeping its maps' space.
func (o *overlay) reset(st *store) {
	o.st = st
	if o.nodes == nil {
		o.nodes = make(map[string]*node, 4)
		o.dirty = make(map[string]struct{}, 4)
	} else {
		clear(o.nodes)
		clear(o.dirty)
	}
	o.children, o.ephemerals, o.reap = nil, nil, nil
}

// index records an index change: key added (true) or removed (false) in
// the index *m.
func index(m *map[string]bool, key []byte, add bool) {
	if *m == nil {
		*m = make(map[string]bool, 2)
	}
	(*m)[string(key)] = add
}

// get returns the node at path, or nil if there is none. The node may be
// changed in place; call put to keep the change. A record that does not
// decode is a storage failure.
func (o *overlay) get(path string) (*node, error) {
	if n, ok := o.nodes[path]; ok {
		return n, nil
	}
	v := o.st.nodes.Get([]byte(path))
	if v == nil {
		o.nodes[path] = nil
		return nil, nil
	}
	n, err := decodeNode(v)
	if err != nil {
		return nil, fmt.Errorf("fsm: read %q: %w", path, err)
	}
	o.nodes[path] = n
	return n, nil
}

// put records n as the node at path.
func (o *overlay) put(path string, n *node) {
	o.nodes[path] = n
	o.dirty[path] = struct{}{}
}

// remove records that path no longer exists.
func (o *overlay) remove(path string) {
	o.nodes[path] = nil
	o.dirty[path] = struct{}{}
}

// flush writes the buffered changes to the store, in key order.
func (o *overlay) flush() error {
	for _, path := range sortedKeys(o.dirty) {
		var err error
		if n := o.nodes[path]; n == nil {
			err = o.st.nodes.Delete([]byte(path))
		} else {
			err = o.st.nodes.Put([]byte(path), n.encode())
		}
		if err != nil {
			return fmt.Errorf("fsm: write node %q: %w", path, err)
		}
	}
	if err := flushIndex(o.st.children, o.children); err != nil {
		return err
	}
	if err := flushIndex(o.st.ephemerals, o.ephemerals); err != nil {
		return err
	}
	return flushIndex(o.st.reap, o.reap)
}

// indexBucket is the part of *bbolt.Bucket that flushIndex needs.
type indexBucket interface {
	Put(k, v []byte) error
	Delete(k []byte) error
}

// flushIndex applies buffered index changes to b in key order.
func flushIndex(b indexBucket, changes map[string]bool) error {
	for _, k := range sortedKeys(changes) {
		var err error
		if changes[k] {
			err = b.Put([]byte(k), empty)
		} else {
			err = b.Delete([]byte(k))
		}
		if err != nil {
			return fmt.Errorf("fsm: write index: %w", err)
		}
	}
	return nil
}

// sortedKeys returns the keys of m in byte order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
