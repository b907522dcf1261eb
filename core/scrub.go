package core

import (
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove/internal/fsm"
)

// Scrub reads back every znode record in the state file and verifies its
// checksum. Damaged records are logged with their paths and counted in
// Stats.CorruptRecords; it returns how many it found. The state file is
// read in one read transaction; records applied since the last flush are
// in memory and not read.
func (n *Node) Scrub() (int, error) {
	bad := 0
	start := time.Now()
	var read int
	err := n.data().View(func(tx *bbolt.Tx) error {
		var err error
		read, err = fsm.Scrub(fsm.Bolt(tx), func(path string, err error) {
			bad++
			n.log.Error("damaged znode record in the state file", "path", path, "err", err)
		})
		return err
	})
	if err != nil {
		return bad, fmt.Errorf("core: scrub: %w", err)
	}
	n.log.Info("scrub done", "records", read, "damaged", bad, "took", time.Since(start).Round(time.Millisecond))
	return bad, nil
}

// scrubLoop scrubs every ScrubInterval until the node stops.
func (n *Node) scrubLoop() {
	t := time.NewTicker(n.cfg.ScrubInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if _, err := n.Scrub(); err != nil {
				n.log.Warn("scrub", "err", err)
			}
		case <-n.donec:
			return
		}
	}
}
