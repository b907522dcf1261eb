package fsm

import (
	"fmt"

	"github.com/grovekit/grove"
)

// Counts returns the number of open sessions and of znodes. It walks both
// buckets' pages, so its cost grows with the state (a few ms per 100,000
// znodes); meant for metrics scrapes, not hot paths.
func Counts(tx Tx) (sessions, znodes int, err error) {
	sb, nb := tx.Bucket(bucketSessions), tx.Bucket(bucketNodes)
	if sb == nil || nb == nil {
		return 0, 0, fmt.Errorf("fsm: state buckets missing: %w", grove.ErrCorrupt)
	}
	return sb.KeyN(), nb.KeyN(), nil
}

// ApproximateDataSize returns the sum, over every znode, of its path's and
// its data's lengths: ZooKeeper's zk_approximate_data_size. It decodes
// every record (a damaged one counts its path only), so its cost grows
// with the state; meant for metrics scrapes.
func ApproximateDataSize(tx Tx) int64 {
	b := tx.Bucket(bucketNodes)
	if b == nil {
		return 0
	}
	var size int64
	_ = b.ForEach(func(k, v []byte) error {
		size += int64(len(k))
		if n, err := decodeNode(v); err == nil {
			size += int64(len(n.data))
		}
		return nil
	})
	return size
}
