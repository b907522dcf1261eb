package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
)

// Digest returns a SHA-256 over the whole replicated state: every node
// record (path, data, full Stat with the 64-bit child counter, ACL, mode and
// TTL), the children, ephemeral and reap indexes, every session record (id,
// timeout, password, last seq) and the cached results. The applied index and
// term are left out, so two nodes that applied the same log have equal
// digests whatever their snapshots. Errors wrap grove.ErrCorrupt.
func Digest(tx Tx) ([32]byte, error) {
	h := sha256.New()
	var buf []byte
	for _, name := range stateBuckets {
		b := tx.Bucket(name)
		if b == nil {
			return [32]byte{}, fmt.Errorf("fsm: digest: bucket %s: %w", name, errMissingBucket)
		}
		buf = binary.AppendUvarint(buf[:0], uint64(len(name)))
		h.Write(append(buf, name...))
		err := b.ForEach(func(k, v []byte) error {
			buf = binary.AppendUvarint(buf[:0], uint64(len(k)))
			buf = append(buf, k...)
			buf = binary.AppendUvarint(buf, uint64(len(v)))
			h.Write(buf)
			h.Write(v)
			return nil
		})
		if err != nil {
			return [32]byte{}, fmt.Errorf("fsm: digest: %w", err)
		}
		// A terminator keeps the last key of one bucket from reading as
		// the name of the next.
		h.Write([]byte{0xff})
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

// CopyState replaces every bucket of the package in dst (the state and the
// applied index) with a copy of src's. It is how a node installs a snapshot:
// src is a read transaction on a received bbolt file. src must hold every
// bucket with a decodable root node and applied record; otherwise CopyState
// returns an error wrapping grove.ErrCorrupt before changing dst. A nested
// bucket found while copying also wraps grove.ErrCorrupt; other errors are
// storage failures of dst. After any error dst is partly changed and the
// caller must roll it back.
func CopyState(dst, src *bbolt.Tx) error {
	if err := validateSnapshot(src); err != nil {
		return err
	}
	for _, name := range allBuckets {
		if dst.Bucket(name) != nil {
			if err := dst.DeleteBucket(name); err != nil {
				return fmt.Errorf("fsm: copy state: drop %s: %w", name, err)
			}
		}
		to, err := dst.CreateBucket(name)
		if err != nil {
			return fmt.Errorf("fsm: copy state: create %s: %w", name, err)
		}
		to.FillPercent = 1 // keys arrive in order
		err = src.Bucket(name).ForEach(func(k, v []byte) error {
			if v == nil {
				return fmt.Errorf("nested bucket %q: %w", k, grove.ErrCorrupt)
			}
			return to.Put(k, v)
		})
		if err != nil {
			return fmt.Errorf("fsm: copy state: %s: %w", name, err)
		}
	}
	return nil
}

// validateSnapshot checks that src holds the package's buckets, a root node
// and a well-formed applied record.
func validateSnapshot(src *bbolt.Tx) error {
	for _, name := range allBuckets {
		b := src.Bucket(name)
		if b == nil {
			return fmt.Errorf("fsm: snapshot lacks bucket %s: %w", name, grove.ErrCorrupt)
		}
	}
	root := src.Bucket(bucketNodes).Get([]byte("/"))
	if root == nil {
		return fmt.Errorf("fsm: snapshot lacks the root node: %w", grove.ErrCorrupt)
	}
	if _, err := decodeNode(root); err != nil {
		return fmt.Errorf("fsm: snapshot root node: %w", err)
	}
	if _, _, err := Applied(Bolt(src)); err != nil {
		return fmt.Errorf("fsm: snapshot: %w", err)
	}
	return nil
}
