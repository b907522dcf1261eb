package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/fsm"
)

// defragSuffix names the compacted copy while Defrag writes it; one left
// by a crash is removed at start.
const defragSuffix = ".defrag"

// defragTxBytes bounds each transaction of the copy.
const defragTxBytes = 64 << 20

// data returns the state file (Defrag may replace it; load it per use).
func (n *Node) data() *bbolt.DB { return n.stateDB.Load() }

// defragResult is the answer of the loop to a Defrag request.
type defragResult struct {
	before, after int64
	err           error // the defrag failed; the node goes on with its old file
	fatal         error // the node cannot go on (the loop stops with it)
}

// Defrag rewrites the node's state file (grove.db) compactly and returns
// its size before and after: bbolt files never shrink by themselves, so
// space freed by deletes stays in the file until then. It runs online:
// the raft loop pauses for the copy (this node neither applies nor answers
// meanwhile), writes that arrive wait, and readers see the same state
// throughout. The copy is written to grove.db.defrag, checked against the
// live file (same applied index, same digest) and synced, and only then
// renamed over it; a crash at any point leaves one complete file. Defrag a
// follower, or hand leadership away first (TransferLeadership): a leader
// that pauses for long makes the others elect another.
func (n *Node) Defrag(ctx context.Context) (before, after int64, err error) {
	rc := make(chan defragResult, 1)
	select {
	case n.defragc <- rc:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-n.donec:
		return 0, 0, n.stopErr()
	}
	select {
	case r := <-rc:
		if r.fatal != nil {
			return r.before, r.after, r.fatal
		}
		return r.before, r.after, r.err
	case <-n.donec:
		return 0, 0, n.stopErr()
	}
}

// defrag does Defrag's work (loop only).
func (n *Node) defrag() defragResult {
	if err := n.waitWriter(); err != nil {
		return defragResult{fatal: err}
	}
	if err := n.flushNow(); err != nil { // bbolt then holds every applied change
		return defragResult{fatal: err}
	}
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	old := n.data()
	path := old.Path()
	tmp := path + defragSuffix
	var res defragResult
	if st, err := os.Stat(path); err == nil {
		res.before = st.Size()
	}
	if err := compactTo(old, tmp); err != nil {
		_ = os.Remove(tmp)
		res.err = err
		return res
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		res.err = fmt.Errorf("core: defrag: replace %s: %w", path, err)
		return res
	}
	// From here the compacted file is the state file: it must open.
	if err := syncDir(filepath.Dir(path)); err != nil {
		res.fatal = fmt.Errorf("core: defrag: sync %s: %w", filepath.Dir(path), err)
		return res
	}
	fresh, err := openDB(n.cfg.DataDir, n.cfg.ID, n.cfg.NoSync)
	if err != nil {
		res.fatal = fmt.Errorf("core: defrag: reopen the compacted state file: %w", err)
		return res
	}
	n.stateDB.Store(fresh)
	// Readers that began on the old file finish on it (its pages stay
	// until the last one closes it: the rename unlinked only its name).
	n.retired.Go(func() { _ = old.Close() })
	if st, err := os.Stat(path); err == nil {
		res.after = st.Size()
	}
	n.log.Info("defragmented the state file", "before", res.before, "after", res.after)
	return res
}

// compactTo writes a compact copy of src to path, synced, and checks that
// it holds the same state: the same applied index and the same digest.
func compactTo(src *bbolt.DB, path string) error {
	_ = os.Remove(path)
	dst, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockWait})
	if err != nil {
		return fmt.Errorf("core: defrag: create %s: %w", path, err)
	}
	if err := bbolt.Compact(dst, src, defragTxBytes); err != nil {
		_ = dst.Close()
		return fmt.Errorf("core: defrag: copy: %w", err)
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		return fmt.Errorf("core: defrag: sync %s: %w", path, err)
	}
	want, wantIndex, err := stateDigest(src)
	if err == nil {
		var got [32]byte
		var gotIndex uint64
		got, gotIndex, err = stateDigest(dst)
		if err == nil && (got != want || gotIndex != wantIndex) {
			err = fmt.Errorf("core: defrag: the copy differs from the state file (index %d, want %d): %w", gotIndex, wantIndex, grove.ErrCorrupt)
		}
	}
	return errors.Join(err, dst.Close())
}

// stateDigest returns the digest of the state in db and its applied index.
func stateDigest(db *bbolt.DB) (digest [32]byte, index uint64, err error) {
	err = db.View(func(tx *bbolt.Tx) error {
		var err error
		if index, _, err = fsm.Applied(fsm.Bolt(tx)); err != nil {
			return err
		}
		digest, err = fsm.Digest(fsm.Bolt(tx))
		return err
	})
	return digest, index, err
}
