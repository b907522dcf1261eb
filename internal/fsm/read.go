package fsm

import (
	"errors"
	"fmt"

	"github.com/grovekit/grove"
)

// readNode validates path and loads its node from a read transaction. The
// node's data aliases the transaction's memory. It returns an error wrapping
// grove.ErrBadArguments for an invalid path, grove.ErrNoNode for a missing
// node, or grove.ErrCorrupt for a missing bucket or bad record.
func readNode(tx Tx, op, path string) (*node, error) {
	if err := grove.ValidatePath(path); err != nil {
		return nil, fmt.Errorf("fsm: %s: %w", op, err)
	}
	b := tx.Bucket(bucketNodes)
	if b == nil {
		return nil, fmt.Errorf("fsm: %s: %w", op, errMissingBucket)
	}
	v := b.Get([]byte(path))
	if v == nil {
		return nil, fmt.Errorf("fsm: %s %q: %w", op, path, grove.ErrNoNode)
	}
	n, err := decodeNode(v)
	if err != nil {
		return nil, fmt.Errorf("fsm: %s %q: %w", op, path, err)
	}
	return n, nil
}

// checkRead wraps grove.ErrNoAuth unless ids may do perm on n.
func checkRead(n *node, ids []grove.Identity, perm grove.Perm, op, path string) error {
	if err := CheckACL(n.acl, ids, perm); err != nil {
		return fmt.Errorf("fsm: %s %q: %w", op, path, err)
	}
	return nil
}

// Get returns a copy of the data of the node at path and its Stat. ids are
// the reading session's identities; they need READ permission. Errors wrap
// grove.ErrBadArguments, grove.ErrNoNode, grove.ErrNoAuth or
// grove.ErrCorrupt.
func Get(tx Tx, path string, ids []grove.Identity) ([]byte, grove.Stat, error) {
	n, err := readNode(tx, "get", path)
	if err != nil {
		return nil, grove.Stat{}, err
	}
	if err := checkRead(n, ids, grove.PermRead, "get", path); err != nil {
		return nil, grove.Stat{}, err
	}
	return dataOf(n), n.stat(), nil
}

// dataOf copies a node's data: nil for null data, a non-nil slice (maybe
// empty) otherwise, so callers can tell the two apart as ZooKeeper's
// clients do.
func dataOf(n *node) []byte {
	if n.nullData {
		return nil
	}
	return append(make([]byte, 0, len(n.data)), n.data...)
}

// Exists returns the Stat of the node at path, with no permission check.
// Errors wrap grove.ErrBadArguments, grove.ErrNoNode or grove.ErrCorrupt.
func Exists(tx Tx, path string) (grove.Stat, error) {
	n, err := readNode(tx, "exists", path)
	if err != nil {
		return grove.Stat{}, err
	}
	return n.stat(), nil
}

// ACLOf returns the ACL of the node at path, unredacted and without a
// permission check (for the server's own checks); ok is false if there is
// no such node.
func ACLOf(tx Tx, path string) (acl []grove.ACL, ok bool, err error) {
	n, err := readNode(tx, "acl", path)
	switch {
	case errors.Is(err, grove.ErrNoNode):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return n.acl, true, nil
}

// GetACL returns a copy of the ACL of the node at path and its Stat. ids
// need READ or ADMIN permission (grove.ErrNoAuth otherwise), and without
// ADMIN see the hash of every digest id redacted ("user:x"), as ZooKeeper
// does. Errors wrap grove.ErrBadArguments, grove.ErrNoNode, grove.ErrNoAuth
// or grove.ErrCorrupt.
func GetACL(tx Tx, path string, ids []grove.Identity) ([]grove.ACL, grove.Stat, error) {
	n, err := readNode(tx, "getACL", path)
	if err != nil {
		return nil, grove.Stat{}, err
	}
	acl := n.acl // decodeNode made a fresh slice
	// As ZooKeeper 3.8: the caller needs READ or ADMIN, and without ADMIN
	// sees the digest hashes redacted.
	if CheckACL(acl, ids, grove.PermRead) != nil && CheckACL(acl, ids, grove.PermAdmin) != nil {
		return nil, grove.Stat{}, fmt.Errorf("fsm: getACL %q: %w", path, grove.ErrNoAuth)
	}
	if CheckACL(acl, ids, grove.PermAdmin) != nil {
		acl = redactACL(acl)
	}
	return acl, n.stat(), nil
}

// Children lists the names of the children of path in byte order, starting
// strictly after the name after ("" starts at the first), at most limit of
// them (all if limit <= 0). more reports whether names remain after the last
// one returned; stat is the Stat of path. ids need READ permission on path.
// Errors wrap grove.ErrBadArguments, grove.ErrNoNode, grove.ErrNoAuth or
// grove.ErrCorrupt.
func Children(tx Tx, path string, ids []grove.Identity, after string, limit int) (names []string, stat grove.Stat, more bool, err error) {
	n, err := readNode(tx, "children", path)
	if err != nil {
		return nil, grove.Stat{}, false, err
	}
	if err := checkRead(n, ids, grove.PermRead, "children", path); err != nil {
		return nil, grove.Stat{}, false, err
	}
	b := tx.Bucket(bucketChildren)
	if b == nil {
		return nil, grove.Stat{}, false, fmt.Errorf("fsm: children: %w", errMissingBucket)
	}
	prefix := childPrefix(path)
	start := append(append([]byte(nil), prefix...), after...)
	capHint := int(n.numChildren)
	if limit > 0 && limit < capHint {
		capHint = limit
	}
	names = make([]string, 0, max(capHint, 0))
	c := b.Cursor()
	k, _ := c.Seek(start)
	if after != "" && k != nil && string(k) == string(start) {
		k, _ = c.Next()
	}
	for ; k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		if limit > 0 && len(names) == limit {
			return names, n.stat(), true, nil
		}
		names = append(names, string(k[len(prefix):]))
	}
	return names, n.stat(), false, nil
}

// CountDescendants returns the number of nodes below path, at any depth
// (ZooKeeper's getAllChildrenNumber). ids need READ permission on path.
// Errors wrap grove.ErrBadArguments, grove.ErrNoNode, grove.ErrNoAuth or
// grove.ErrCorrupt.
func CountDescendants(tx Tx, path string, ids []grove.Identity) (int64, error) {
	n, err := readNode(tx, "countDescendants", path)
	if err != nil {
		return 0, err
	}
	if err := checkRead(n, ids, grove.PermRead, "countDescendants", path); err != nil {
		return 0, err
	}
	prefix := []byte(path + "/")
	if path == "/" {
		prefix = []byte("/")
	}
	var count int64
	c := tx.Bucket(bucketNodes).Cursor()
	for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		if string(k) != "/" {
			count++
		}
	}
	return count, nil
}

// Ephemerals returns the paths of the ephemeral nodes of session that start
// with prefix ("/" or "" for all), in path order. Errors wrap
// grove.ErrCorrupt.
func Ephemerals(tx Tx, session uint64, prefix string) ([]string, error) {
	st, err := openStore(tx)
	if err != nil {
		return nil, err
	}
	return st.sessionEphemerals(session, prefix), nil
}

// Walk calls fn for every node in path (byte) order, with its data, Stat and
// ACL. data is valid only during the call. It stops at and returns the first
// error of fn; other errors wrap grove.ErrCorrupt.
func Walk(tx Tx, fn func(path string, data []byte, stat grove.Stat, acl []grove.ACL) error) error {
	b := tx.Bucket(bucketNodes)
	if b == nil {
		return fmt.Errorf("fsm: walk: %w", errMissingBucket)
	}
	return b.ForEach(func(k, v []byte) error {
		n, err := decodeNode(v)
		if err != nil {
			return fmt.Errorf("fsm: walk %q: %w", k, err)
		}
		return fn(string(k), n.data, n.stat(), n.acl)
	})
}

// SessionEphemerals is one open session and the paths of its ephemeral
// znodes.
type SessionEphemerals struct {
	Session    Session
	Ephemerals []string
}

// AllSessionEphemerals lists every open session, in ID order, with its
// ephemeral znodes (ZooKeeper's dump four-letter word, grove sessions).
func AllSessionEphemerals(tx Tx) ([]SessionEphemerals, error) {
	sessions, err := Sessions(tx)
	if err != nil {
		return nil, err
	}
	out := make([]SessionEphemerals, 0, len(sessions))
	for _, ss := range sessions {
		paths, err := Ephemerals(tx, ss.ID, "/")
		if err != nil {
			return nil, err
		}
		out = append(out, SessionEphemerals{Session: ss, Ephemerals: paths})
	}
	return out, nil
}
