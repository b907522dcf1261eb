package fsm

import (
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
)

// NodeInfo is what a backup tool learns of an exported node record without
// keeping the record: its Stat, mode and data.
type NodeInfo struct {
	Stat grove.Stat
	Mode grove.CreateMode
	ACL  []grove.ACL
	Data []byte // aliases the record
}

// DecodeRecord decodes an exported node record (see Export). A malformed
// record returns an error wrapping grove.ErrCorrupt.
func DecodeRecord(rec []byte) (NodeInfo, error) {
	n, err := decodeNode(rec)
	if err != nil {
		return NodeInfo{}, err
	}
	return NodeInfo{Stat: n.stat(), Mode: n.mode, ACL: n.acl, Data: n.data}, nil
}

// Export calls fn for every node that outlives its sessions, in path order
// (a parent before its children), with the node's record as stored. Nodes
// owned by a session (ephemerals) are left out: they belong to the cluster
// whose sessions own them. rec is valid only during the call. It returns the
// number of ephemerals left out.
func Export(tx Tx, fn func(path string, rec []byte) error) (ephemerals int, err error) {
	b := tx.Bucket(bucketNodes)
	if b == nil {
		return 0, fmt.Errorf("fsm: export: %w", errMissingBucket)
	}
	err = b.ForEach(func(k, v []byte) error {
		n, err := decodeNode(v)
		if err != nil {
			return fmt.Errorf("fsm: export %q: %w", k, err)
		}
		if n.isEphemeral() {
			ephemerals++
			return nil
		}
		return fn(string(k), v)
	})
	return ephemerals, err
}

// Importer fills an initialised, otherwise empty store with exported node
// records (see Export), in their export order. Finish completes the import.
type Importer struct {
	tx      *bbolt.Tx
	st      *store
	check   *TreeCheck
	counts  map[string]int32 // children imported per parent
	claimed map[string]int32 // numChildren each record claimed
	nodes   int
}

// NewImporter starts an import into tx of a tree exported at applied index
// index, replacing the initial tree Init made; the tx may be replaced
// between records with Rebind (to commit in batches). The records are
// checked as TreeCheck does.
func NewImporter(tx *bbolt.Tx, index uint64) (*Importer, error) {
	check, err := NewTreeCheck(index)
	if err != nil {
		return nil, err
	}
	st, err := openStore(Bolt(tx))
	if err != nil {
		return nil, err
	}
	for _, b := range []Bucket{st.nodes, st.children, st.reap} {
		if err := deletePrefix(b, nil); err != nil {
			return nil, err
		}
	}
	return &Importer{tx: tx, st: st, check: check, counts: map[string]int32{}, claimed: map[string]int32{}}, nil
}

// Rebind continues the import in a new transaction.
func (im *Importer) Rebind(tx *bbolt.Tx) error {
	st, err := openStore(Bolt(tx))
	if err != nil {
		return err
	}
	im.tx, im.st = tx, st
	return nil
}

// Put imports one node. Records must come in path order with every parent
// before its children, the root first; a record out of order, of an
// ephemeral, with a bad path or an undecodable body returns an error
// wrapping grove.ErrCorrupt.
func (im *Importer) Put(path string, rec []byte) error {
	n, err := im.check.add(path, rec)
	if err != nil {
		return err
	}
	if path != "/" {
		parent := grove.Parent(path)
		im.counts[parent]++
		if err := im.st.children.Put(childKey(parent, grove.Base(path)), empty); err != nil {
			return err
		}
	}
	if n.reapable() {
		if err := im.st.reap.Put([]byte(path), empty); err != nil {
			return err
		}
	}
	if err := im.st.nodes.Put([]byte(path), append([]byte(nil), rec...)); err != nil {
		return err
	}
	im.claimed[path] = n.numChildren
	im.nodes++
	return nil
}

// MaxIndex bounds the applied index (zxid) of an imported tree: no cluster
// gets near it, and an index beyond it would overflow raft's indexes and
// ZooKeeper's signed zxids within a few writes.
const MaxIndex = 1 << 62

// TreeCheck checks exported node records as a restore would import them,
// without importing: Inspect and restore accept exactly the same files.
type TreeCheck struct {
	index uint64
	seen  map[string]struct{}
	last  string
	nodes int
}

// NewTreeCheck checks the records of a tree exported at applied index
// index. It returns an error wrapping grove.ErrCorrupt for index 0 or
// beyond MaxIndex.
func NewTreeCheck(index uint64) (*TreeCheck, error) {
	if index == 0 || index > MaxIndex {
		return nil, fmt.Errorf("fsm: applied index %d out of range (1..%d): %w", index, uint64(MaxIndex), grove.ErrCorrupt)
	}
	return &TreeCheck{index: index, seen: map[string]struct{}{}}, nil
}

// Add checks the next record: a valid path, the root first, path order with
// every parent before its children, a decodable body, not an ephemeral,
// zxids between 0 and the tree's index. Errors wrap grove.ErrCorrupt.
func (c *TreeCheck) Add(path string, rec []byte) (NodeInfo, error) {
	n, err := c.add(path, rec)
	if err != nil {
		return NodeInfo{}, err
	}
	return NodeInfo{Stat: n.stat(), Mode: n.mode, ACL: n.acl, Data: n.data}, nil
}

func (c *TreeCheck) add(path string, rec []byte) (*node, error) {
	if err := grove.ValidatePath(path); err != nil {
		return nil, fmt.Errorf("fsm: import %q: %v: %w", path, err, grove.ErrCorrupt)
	}
	if c.nodes == 0 && path != "/" {
		return nil, fmt.Errorf("fsm: import: the first node is %q, not the root: %w", path, grove.ErrCorrupt)
	}
	if c.nodes > 0 && path <= c.last {
		return nil, fmt.Errorf("fsm: import: %q after %q, out of order: %w", path, c.last, grove.ErrCorrupt)
	}
	n, err := decodeNode(rec)
	if err != nil {
		return nil, fmt.Errorf("fsm: import %q: %w", path, err)
	}
	if n.isEphemeral() {
		return nil, fmt.Errorf("fsm: import %q: an ephemeral node: %w", path, grove.ErrCorrupt)
	}
	for _, z := range []int64{n.czxid, n.mzxid, n.pzxid} {
		if z < 0 || uint64(z) > c.index {
			return nil, fmt.Errorf("fsm: import %q: zxid %d outside 0..%d: %w", path, z, c.index, grove.ErrCorrupt)
		}
	}
	if path != "/" {
		if _, ok := c.seen[grove.Parent(path)]; !ok {
			return nil, fmt.Errorf("fsm: import %q: parent %q missing: %w", path, grove.Parent(path), grove.ErrCorrupt)
		}
	}
	c.seen[path] = struct{}{}
	c.last = path
	c.nodes++
	return n, nil
}

// Nodes returns the number of nodes imported so far.
func (im *Importer) Nodes() int { return im.nodes }

// Finish corrects the child count of every node whose record counted
// children that were not imported (ephemerals left out of the export) and
// records index as applied (term 1: the term of a new cluster's seed).
func (im *Importer) Finish(index uint64) error {
	if im.nodes == 0 {
		return fmt.Errorf("fsm: import: no nodes: %w", grove.ErrCorrupt)
	}
	for path, claimed := range im.claimed {
		if im.counts[path] == claimed {
			continue
		}
		v := im.st.nodes.Get([]byte(path))
		n, err := decodeNode(v)
		if err != nil {
			return fmt.Errorf("fsm: import %q: %w", path, err)
		}
		n.numChildren = im.counts[path]
		if err := im.st.nodes.Put([]byte(path), n.encode()); err != nil {
			return err
		}
	}
	return SetApplied(Bolt(im.tx), index, 1)
}
