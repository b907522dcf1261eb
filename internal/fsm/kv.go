package fsm

import (
	"go.etcd.io/bbolt"
)

// Tx is the storage the state machine reads and changes: a bbolt
// transaction (Bolt), or a Layers view of applied but not yet flushed
// changes over one. Everything the package does goes through it.
type Tx interface {
	// Bucket returns the named bucket, or nil if there is none.
	Bucket(name []byte) Bucket
}

// Bucket is the part of *bbolt.Bucket the state machine uses. Slices it
// returns are valid only while the transaction (or view) lasts; Put keeps
// no reference to key or value once the transaction commits.
type Bucket interface {
	Get(key []byte) []byte
	Put(key, value []byte) error
	Delete(key []byte) error
	Cursor() Cursor
	ForEach(fn func(k, v []byte) error) error
	// KeyN is the number of keys in the bucket.
	KeyN() int
}

// Cursor walks a bucket in key order, as *bbolt.Cursor does: each call
// returns the key and value it lands on, or nil, nil past the end.
type Cursor interface {
	First() (key, value []byte)
	Seek(seek []byte) (key, value []byte)
	Next() (key, value []byte)
	// Delete removes the key the cursor is on.
	Delete() error
}

// Bolt adapts a bbolt transaction to Tx.
func Bolt(tx *bbolt.Tx) Tx { return boltTx{tx} }

type boltTx struct{ tx *bbolt.Tx }

func (t boltTx) Bucket(name []byte) Bucket {
	b := t.tx.Bucket(name)
	if b == nil {
		return nil // an untyped nil, so callers can compare with nil
	}
	return boltBucket{b}
}

type boltBucket struct{ *bbolt.Bucket }

func (b boltBucket) Cursor() Cursor { return b.Bucket.Cursor() }
func (b boltBucket) KeyN() int      { return b.Stats().KeyN }
