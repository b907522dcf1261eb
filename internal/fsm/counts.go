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
