package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/google/btree"
	"go.etcd.io/bbolt"
)

// A Layer holds changes that were applied but are not yet written to
// bbolt: per bucket, an ordered map from key to value or tombstone. Core
// applies committed entries into the newest layer of a View, answers them
// at once, and writes the layer to bbolt later in a batch (FlushTo), so a
// write never waits for the state's fsync.
//
// A Layer is not safe for concurrent use: one goroutine changes it (through
// a View) while no other reads it; the caller's lock provides that.
type Layer struct {
	buckets map[string]*layerBucket
	changes int // Put and Delete calls since the layer was made
	bytes   int // key and value bytes put
}

// NewLayer returns an empty layer.
func NewLayer() *Layer { return &Layer{buckets: map[string]*layerBucket{}} }

// Changes returns how many Put and Delete calls went into the layer, and
// how many key and value bytes they carried.
func (l *Layer) Changes() (n, bytes int) { return l.changes, l.bytes }

// Empty reports whether the layer holds no change.
func (l *Layer) Empty() bool { return l.changes == 0 }

// FlushTo writes the layer's changes into tx, bucket by bucket in key
// order. Buckets the layer names must exist in tx. tx references the
// layer's keys and values until it commits; the layer must not change
// meanwhile.
func (l *Layer) FlushTo(tx *bbolt.Tx) error {
	names := make([]string, 0, len(l.buckets))
	for name := range l.buckets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b := tx.Bucket([]byte(name))
		if b == nil {
			return fmt.Errorf("fsm: flush: bucket %s missing: %w", name, errMissingBucket)
		}
		var err error
		l.buckets[name].t.Ascend(func(it layerItem) bool {
			if it.del {
				err = b.Delete(it.k)
			} else {
				err = b.Put(it.k, it.v)
			}
			return err == nil
		})
		if err != nil {
			return fmt.Errorf("fsm: flush bucket %s: %w", name, err)
		}
	}
	return nil
}

func (l *Layer) bucket(name []byte, create bool) *layerBucket {
	lb := l.buckets[string(name)]
	if lb == nil && create {
		lb = &layerBucket{t: btree.NewG(32, lessItem)}
		l.buckets[string(name)] = lb
	}
	return lb
}

// layerBucket is one bucket's changes in a layer.
type layerBucket struct {
	t *btree.BTreeG[layerItem]
	// delta is the change in the bucket's key count this layer makes
	// relative to everything below it.
	delta int
}

// layerItem is a key's value in a layer, or its deletion.
type layerItem struct {
	k   []byte
	v   []byte
	del bool
}

func lessItem(a, b layerItem) bool { return bytes.Compare(a.k, b.k) < 0 }

// get returns the layer's item for k.
func (lb *layerBucket) get(k []byte) (layerItem, bool) {
	return lb.t.Get(layerItem{k: k})
}

// next returns the layer's first item with a key at or after k
// (inclusive) or strictly after it.
func (lb *layerBucket) next(k []byte, inclusive bool) (layerItem, bool) {
	var out layerItem
	found := false
	lb.t.AscendGreaterOrEqual(layerItem{k: k}, func(it layerItem) bool {
		if !inclusive && bytes.Equal(it.k, k) {
			return true
		}
		out, found = it, true
		return false
	})
	return out, found
}

// View is a Tx that reads through layers, newest last, over base and
// writes into the newest layer. It is what the state machine runs on
// between flushes: reads see every applied change, flushed or not.
//
// A View remembers the buckets it has handed out, and looks the package's
// own buckets (the ones Init creates) up in base only when one is first
// read: opening a bbolt bucket costs a cursor search and several
// allocations, and a write touches only some of them. A base that lacks
// one of those buckets (a store Init never ran on) reads as empty there,
// and FlushTo fails with an error wrapping grove.ErrCorrupt.
//
// A View is not safe for concurrent use.
type View struct {
	base   Tx
	layers []*Layer
	// own holds the package's buckets once handed out (indexed as
	// allBuckets), opened keeps any other bucket: each is opened once.
	own    []viewBucket
	opened []*viewBucket
}

// NewView returns a view of layers (oldest first) over base. Writes go to
// the last layer; with no layer the view is read-only and writes fail.
func NewView(base Tx, layers ...*Layer) *View {
	return &View{base: base, layers: layers}
}

// Bucket returns the named bucket as the view sees it, or nil if neither
// base nor any layer has it (the package's own buckets are never nil
// over a base: see View).
func (v *View) Bucket(name []byte) Bucket {
	if i, ok := ownIndex[string(name)]; ok && v.base != nil {
		if v.own == nil {
			v.own = make([]viewBucket, len(allBuckets))
		}
		b := &v.own[i]
		if b.v == nil {
			*b = viewBucket{v: v, name: allBuckets[i], counted: countedBuckets[string(name)]}
		}
		return b
	}
	for _, b := range v.opened {
		if bytes.Equal(b.name, name) {
			return b
		}
	}
	b := &viewBucket{v: v, name: name, counted: countedBuckets[string(name)], resolved: true}
	if v.base != nil {
		b.base = v.base.Bucket(name)
	}
	if b.base == nil && !v.inLayers(name) {
		return nil
	}
	v.opened = append(v.opened, b)
	return b
}

// inLayers reports whether a layer holds changes to the named bucket.
func (v *View) inLayers(name []byte) bool {
	for _, l := range v.layers {
		if l.bucket(name, false) != nil {
			return true
		}
	}
	return false
}

// countedBuckets are the buckets whose KeyN the package asks for (Counts):
// only their writes pay a lookup to keep a layer's key-count delta.
var countedBuckets = map[string]bool{string(bucketNodes): true, string(bucketSessions): true}

// ownIndex maps each of the package's bucket names (allBuckets) to its
// slot in View.own.
var ownIndex = func() map[string]int {
	m := make(map[string]int, len(allBuckets))
	for i, name := range allBuckets {
		m[string(name)] = i
	}
	return m
}()

// viewBucket is one bucket of a View.
type viewBucket struct {
	v       *View
	name    []byte
	base    Bucket // nil when only layers have the bucket; valid once resolved
	counted bool   // layers keep a key-count delta for it (countedBuckets)
	// resolved says base has been looked up (see View).
	resolved bool
}

// baseBucket returns the bucket in base, looking it up on first use.
func (b *viewBucket) baseBucket() Bucket {
	if !b.resolved {
		b.base, b.resolved = b.v.base.Bucket(b.name), true
	}
	return b.base
}

// lookup returns the newest layer's item for k, if a layer has one.
func (b *viewBucket) lookup(k []byte) (layerItem, bool) {
	for i := len(b.v.layers) - 1; i >= 0; i-- {
		if lb := b.v.layers[i].bucket(b.name, false); lb != nil {
			if it, ok := lb.get(k); ok {
				return it, true
			}
		}
	}
	return layerItem{}, false
}

func (b *viewBucket) Get(k []byte) []byte {
	if it, ok := b.lookup(k); ok {
		if it.del {
			return nil
		}
		return it.v
	}
	base := b.baseBucket()
	if base == nil {
		return nil
	}
	return base.Get(k)
}

// errReadOnly is returned by writes through a view without layers.
var errReadOnly = errors.New("fsm: write through a read-only view")

// put records k's new value (or its deletion) in the newest layer.
// existed says whether k is visible now; only counted buckets need it.
func (b *viewBucket) put(k, v []byte, del, existed bool) error {
	if len(b.v.layers) == 0 {
		return errReadOnly
	}
	top := b.v.layers[len(b.v.layers)-1]
	lb := top.bucket(b.name, true)
	// One allocation holds the copies of both key and value.
	n := len(k)
	if !del {
		n += len(v)
	}
	buf := make([]byte, n)
	copy(buf, k)
	it := layerItem{k: buf[:len(k):len(k)], del: del}
	if !del {
		copy(buf[len(k):], v)
		it.v = buf[len(k):] // never nil: a put of an empty value is not a tombstone
	}
	switch {
	case !b.counted:
	case existed && del:
		lb.delta--
	case !existed && !del:
		lb.delta++
	}
	lb.t.ReplaceOrInsert(it)
	top.changes++
	top.bytes += len(k) + len(v)
	return nil
}

func (b *viewBucket) Put(k, v []byte) error {
	if len(k) == 0 {
		return errors.New("fsm: put an empty key")
	}
	return b.put(k, v, false, b.counted && b.Get(k) != nil)
}

func (b *viewBucket) Delete(k []byte) error {
	if b.counted && b.Get(k) == nil {
		return nil // nothing to delete, as bbolt; uncounted buckets just record the tombstone
	}
	return b.put(k, nil, true, b.counted)
}

// KeyN is exact for every bucket: kept as a delta for the counted ones,
// counted by a walk for the others.
func (b *viewBucket) KeyN() int {
	if !b.counted {
		n := 0
		_ = b.ForEach(func(_, _ []byte) error { n++; return nil })
		return n
	}
	n := 0
	if base := b.baseBucket(); base != nil {
		n = base.KeyN()
	}
	for _, l := range b.v.layers {
		if lb := l.bucket(b.name, false); lb != nil {
			n += lb.delta
		}
	}
	return n
}

func (b *viewBucket) ForEach(fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (b *viewBucket) Cursor() Cursor {
	c := &viewCursor{b: b}
	if base := b.baseBucket(); base != nil {
		c.base = base.Cursor()
	}
	return c
}

// viewCursor merges the base bucket's cursor with the layers' items: at
// each step the smallest key wins, the newest source wins a tie, and a
// tombstone hides the key. Layers are searched afresh at every step, so
// writes through the view between steps are seen, as with a bbolt cursor
// in a write transaction.
type viewCursor struct {
	b        *viewBucket
	base     Cursor
	baseK    []byte // the base cursor's current key (nil: exhausted)
	baseV    []byte
	baseInit bool
	cur      []byte // the key last returned (nil: before the start or past the end)
}

func (c *viewCursor) First() ([]byte, []byte) {
	if c.base != nil {
		c.baseK, c.baseV = c.base.First()
		c.baseInit = true
	}
	return c.settle(nil, true)
}

func (c *viewCursor) Seek(seek []byte) ([]byte, []byte) {
	if c.base != nil {
		c.baseK, c.baseV = c.base.Seek(seek)
		c.baseInit = true
	}
	return c.settle(seek, true)
}

func (c *viewCursor) Next() ([]byte, []byte) {
	if c.cur == nil {
		return nil, nil
	}
	return c.settle(c.cur, false)
}

func (c *viewCursor) Delete() error {
	if c.cur == nil {
		return fmt.Errorf("fsm: cursor delete with no current key")
	}
	return c.b.Delete(c.cur)
}

// settle returns the first visible key at or after from (inclusive) or
// after it, and makes it the cursor's position.
func (c *viewCursor) settle(from []byte, inclusive bool) ([]byte, []byte) {
	for {
		k, v, del, ok := c.candidate(from, inclusive)
		if !ok {
			c.cur = nil
			return nil, nil
		}
		if !del {
			c.cur = k
			return k, v
		}
		from, inclusive = k, false // hidden by a tombstone: step past it
	}
}

// candidate finds the smallest key at or after from among the sources and
// the newest source's item for it.
func (c *viewCursor) candidate(from []byte, inclusive bool) (k, v []byte, del, ok bool) {
	if c.base != nil && c.baseInit {
		for c.baseK != nil && from != nil && (bytes.Compare(c.baseK, from) < 0 || (!inclusive && bytes.Equal(c.baseK, from))) {
			c.baseK, c.baseV = c.base.Next()
		}
		if c.baseK != nil {
			k, v, ok = c.baseK, c.baseV, true
		}
	}
	for _, l := range c.b.v.layers { // oldest first: a newer layer wins ties
		lb := l.bucket(c.b.name, false)
		if lb == nil {
			continue
		}
		var it layerItem
		var found bool
		if from == nil {
			it, found = lb.t.Min()
		} else {
			it, found = lb.next(from, inclusive)
		}
		if !found {
			continue
		}
		if !ok || bytes.Compare(it.k, k) <= 0 {
			k, v, del, ok = it.k, it.v, it.del, true
		}
	}
	return k, v, del, ok
}
