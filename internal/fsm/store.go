package fsm

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
)

// Bucket names. All start with "fsm." so they never clash with the raft
// buckets core keeps in the same bbolt file.
var (
	bucketNodes      = []byte("fsm.nodes")      // path → node record
	bucketChildren   = []byte("fsm.children")   // parent + "\x00" + name → empty
	bucketEphemerals = []byte("fsm.ephemerals") // session(8) + path → empty
	bucketReap       = []byte("fsm.reap")       // path of a container or TTL node → empty
	bucketSessions   = []byte("fsm.sessions")   // session(8) → session record
	bucketResults    = []byte("fsm.results")    // session(8) + seq(8) → command.Result
	bucketMeta       = []byte("fsm.meta")       // keyApplied → index(8) + term(8)
	bucketTokens     = []byte("fsm.tokens")     // session password → session(8), so a retried create finds its session
)

// stateBuckets are the buckets holding replicated state, in digest order.
// bucketMeta is not among them: the applied index is not state.
var stateBuckets = [][]byte{
	bucketNodes, bucketChildren, bucketEphemerals, bucketReap, bucketSessions, bucketResults, bucketTokens,
}

// allBuckets are every bucket the package owns.
var allBuckets = append(append([][]byte{}, stateBuckets...), bucketMeta)

var keyApplied = []byte("applied")

// errMissingBucket is wrapped when the store was not initialised.
var errMissingBucket = fmt.Errorf("fsm: store not initialised: %w", grove.ErrCorrupt)

// store holds the package's buckets of one transaction.
type store struct {
	tx         Tx
	nodes      Bucket
	children   Bucket
	ephemerals Bucket
	reap       Bucket
	sessions   Bucket
	results    Bucket
	tokens     Bucket
	meta       Bucket
}

// openStore looks up every bucket of the package in tx. It returns an error
// wrapping grove.ErrCorrupt when one is missing.
func openStore(tx Tx) (*store, error) {
	st := &store{tx: tx}
	ptrs := []*Bucket{&st.nodes, &st.children, &st.ephemerals, &st.reap, &st.sessions, &st.results, &st.tokens, &st.meta}
	for i, name := range allBuckets {
		b := tx.Bucket(name)
		if b == nil {
			return nil, fmt.Errorf("fsm: bucket %s missing: %w", name, errMissingBucket)
		}
		*ptrs[i] = b
	}
	return st, nil
}

// Init creates all buckets if missing and, on an empty store, the initial
// tree ZooKeeper has: "/", "/zookeeper" and "/zookeeper/quota", with zxid 0,
// time 0 and the world:anyone ALL ACL. It is idempotent. Errors are storage
// failures.
func Init(tx *bbolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("fsm: create bucket %s: %w", name, err)
		}
	}
	st, err := openStore(Bolt(tx))
	if err != nil {
		return err
	}
	if st.nodes.Get([]byte("/")) != nil {
		return ensureConfigNode(st)
	}
	tree := []struct {
		path     string
		children []string
	}{
		{"/", []string{"zookeeper"}},
		{"/zookeeper", []string{"quota"}},
		{"/zookeeper/quota", nil},
	}
	for _, t := range tree {
		n := &node{acl: grove.OpenACLUnsafe, numChildren: int32(len(t.children))}
		// ZooKeeper 3.8 starts "/" at cversion -1 and /zookeeper at -2
		// (measured; an artifact of how it builds them), and the creates
		// under them count up from there. The counter is 64 bits and the
		// Stat shows its low 32, so these wrap to -1 and -2. Sequential
		// names under them still start at 0 (node.seq).
		switch t.path {
		case "/":
			n.cversion = 1<<64 - 1
		case "/zookeeper":
			n.cversion = 1<<64 - 2
		}
		if err := st.nodes.Put([]byte(t.path), n.encode()); err != nil {
			return fmt.Errorf("fsm: init %q: %w", t.path, err)
		}
		for _, c := range t.children {
			if err := st.children.Put(childKey(t.path, c), empty); err != nil {
				return fmt.Errorf("fsm: init %q: %w", t.path, err)
			}
		}
	}
	return ensureConfigNode(st)
}

// configPath is ZooKeeper's dynamic-configuration znode, which it always
// serves: readable by anyone, writable by no one (aversion -1, as
// ZooKeeper 3.8 shows it). Grove's membership is not kept there; its data
// is empty.
const configPath = "/zookeeper/config"

// ensureConfigNode adds /zookeeper/config to a store that lacks it (a new
// one, or one written before Grove served it). Every node does the same
// on open, so replicas agree once they run this version.
func ensureConfigNode(st *store) error {
	if st.nodes.Get([]byte(configPath)) != nil {
		return nil
	}
	parent, err := decodeNode(st.nodes.Get([]byte("/zookeeper")))
	if err != nil {
		return fmt.Errorf("fsm: init %s: %w", configPath, err)
	}
	parent.numChildren++
	n := &node{acl: []grove.ACL{{Perms: grove.PermRead, Scheme: "world", ID: "anyone"}}, aversion: -1}
	for _, put := range []struct {
		b    Bucket
		k, v []byte
	}{
		{st.nodes, []byte("/zookeeper"), parent.encode()},
		{st.nodes, []byte(configPath), n.encode()},
		{st.children, childKey("/zookeeper", "config"), empty},
	} {
		if err := put.b.Put(put.k, put.v); err != nil {
			return fmt.Errorf("fsm: init %s: %w", configPath, err)
		}
	}
	return nil
}

// SetApplied records index and term as the last applied entry. Use it for
// entries that are not commands (empty entries, configuration changes);
// Apply records its own. Errors are storage failures.
func SetApplied(tx Tx, index, term uint64) error {
	b := tx.Bucket(bucketMeta)
	if b == nil {
		return fmt.Errorf("fsm: set applied: %w", errMissingBucket)
	}
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], index)
	binary.BigEndian.PutUint64(v[8:], term)
	if err := b.Put(keyApplied, v[:]); err != nil {
		return fmt.Errorf("fsm: set applied: %w", err)
	}
	return nil
}

// Applied returns the last applied index and term, or 0, 0 on a fresh
// store. A malformed record returns an error wrapping grove.ErrCorrupt.
func Applied(tx Tx) (index, term uint64, err error) {
	b := tx.Bucket(bucketMeta)
	if b == nil {
		return 0, 0, nil
	}
	v := b.Get(keyApplied)
	switch len(v) {
	case 0:
		return 0, 0, nil
	case 16:
		return binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:]), nil
	}
	return 0, 0, fmt.Errorf("fsm: applied record of %d bytes: %w", len(v), grove.ErrCorrupt)
}

// childKey is the children-index key of name under parent.
func childKey(parent, name string) []byte {
	k := make([]byte, 0, len(parent)+1+len(name))
	k = append(k, parent...)
	k = append(k, 0)
	return append(k, name...)
}

// childPrefix is the prefix shared by the children-index keys of parent.
func childPrefix(parent string) []byte {
	return append([]byte(parent), 0)
}

// u64 returns v as 8 big-endian bytes.
func u64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

// ephemeralKey is the ephemerals-index key of path owned by session.
func ephemeralKey(session uint64, path string) []byte {
	k := make([]byte, 8, 8+len(path))
	binary.BigEndian.PutUint64(k, session)
	return append(k, path...)
}

// resultKey is the result-cache key of a session's request seq.
func resultKey(session, seq uint64) []byte {
	var k [16]byte
	binary.BigEndian.PutUint64(k[:8], session)
	binary.BigEndian.PutUint64(k[8:], seq)
	return k[:]
}

// hasPrefix reports whether k starts with p.
func hasPrefix(k, p []byte) bool {
	return len(k) >= len(p) && string(k[:len(p)]) == string(p)
}

// deletePrefix deletes every key of b that starts with prefix.
func deletePrefix(b Bucket, prefix []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("fsm: delete key: %w", err)
		}
	}
	return nil
}

// empty is the value of index entries.
var empty = []byte{}

// SetConfigData replaces the data of /zookeeper/config, ZooKeeper's
// dynamic configuration, keeping the rest of its record (ZooKeeper shows
// the node with version -1 whatever its data). The node keeps the
// cluster's members there; every replica writes the same bytes at the
// same applied index.
func SetConfigData(tx Tx, data []byte) error {
	st, err := openStore(tx)
	if err != nil {
		return err
	}
	n, err := decodeNode(st.nodes.Get([]byte(configPath)))
	if err != nil {
		return fmt.Errorf("fsm: %s: %w", configPath, err)
	}
	n.data, n.nullData = data, false
	return st.nodes.Put([]byte(configPath), n.encode())
}
