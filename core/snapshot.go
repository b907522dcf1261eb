package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/fsm"
)

// A raft snapshot in Grove carries no data of its own: the leader streams a
// consistent bbolt read transaction of its data file (tx.WriteTo), and the
// snapshot's metadata is rewritten to the applied index of that very
// transaction. The follower stores the stream in a file next to its data
// file, checks it, steps the snapshot message into raft, and when raft hands
// the snapshot back in a Ready copies the state buckets over in the Ready's
// transaction, so the install is atomic.

type snapReport struct {
	to     uint64
	status raft.SnapshotStatus
}

type snapIncoming struct {
	msg   *pb.Message
	index uint64
	path  string
}

// sendSnapshot streams the current state to m's target (loop goroutine; the
// stream itself runs in its own goroutine, one per peer).
func (n *Node) sendSnapshot(m *pb.Message) {
	to := m.GetTo()
	if n.tr == nil || n.loopState.sending[to] {
		n.rn.ReportSnapshot(to, raft.SnapshotFailure)
		return
	}
	n.loopState.sending[to] = true
	// Keep the log from here on until the peer caught up past it: the
	// stream's state is at least this new.
	n.loopState.snapPins[to] = snapPin{index: n.applied.Load(), at: time.Now()}
	n.wg.Go(func() {
		status := raft.SnapshotFinish
		if err := n.streamSnapshot(m); err != nil {
			n.log.Warn("snapshot stream failed", "to", to, "err", err)
			status = raft.SnapshotFailure
		}
		select {
		case n.snapc <- snapReport{to: to, status: status}:
		case <-n.stopc:
		}
	})
}

func (n *Node) streamSnapshot(m *pb.Message) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	tx, err := n.data().Begin(false)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	index, term, err := fsm.Applied(fsm.Bolt(tx))
	if err != nil {
		return err
	}
	cs, err := readConfState(tx)
	if err != nil {
		return err
	}
	msg := proto.Clone(m).(*pb.Message)
	msg.Snapshot = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(index), Term: new(term), ConfState: cs}}
	header, err := proto.Marshal(msg)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, err := tx.WriteTo(pw)
		_ = pw.CloseWithError(err) // always nil
	}()
	start := time.Now()
	err = n.tr.SendSnapshot(ctx, m.GetTo(), header, pr)
	_ = pr.CloseWithError(errors.New("core: snapshot stream ended")) // always nil
	<-written                                                        // the transaction must outlive WriteTo
	if err == nil {
		n.stats.snapsSent.Add(1)
		if o := n.cfg.Observer; o != nil {
			o.ObserveSnapshot("send", time.Since(start))
		}
		n.log.Info("snapshot sent", "to", m.GetTo(), "index", index, "size", tx.Size(), "took", time.Since(start))
	}
	return err
}

// receiveSnapshot stores a snapshot stream durably, checks it and hands it
// to the loop.
func (n *Node) receiveSnapshot(ctx context.Context, from uint64, header []byte, body io.Reader) error {
	msg := &pb.Message{}
	if err := unmarshal(header, msg); err != nil {
		return err
	}
	meta := msg.GetSnapshot().GetMetadata()
	if msg.GetType() != pb.MsgSnap || meta == nil || meta.GetIndex() == 0 {
		return fmt.Errorf("core: snapshot header is not a snapshot message: %w", grove.ErrCorrupt)
	}
	if err := n.checkSender(from, msg); err != nil {
		n.stats.peerMessagesRefused.Add(1)
		return err
	}
	index := meta.GetIndex()
	path := filepath.Join(n.cfg.DataDir, fmt.Sprintf("snap-%016x.db", index))
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, body); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("core: store snapshot %d: %w", index, err)
	}
	if err := checkSnapshotFile(tmp, index); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	select {
	case n.snapInc <- snapIncoming{msg: msg, index: index, path: path}:
		return nil
	case <-ctx.Done():
		_ = os.Remove(path)
		return ctx.Err()
	case <-n.donec:
		_ = os.Remove(path)
		return n.stopErr()
	}
}

// writeFileSync stores a stream durably, syncing every syncEvery bytes so
// the write-back is spread over the transfer instead of one long fsync at
// the end that stalls every other fsync on the disk.
func writeFileSync(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var sinceSync int
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			if _, err := f.Write(buf[:k]); err != nil {
				_ = f.Close()
				return err
			}
			if sinceSync += k; sinceSync >= syncEvery {
				if err := f.Sync(); err != nil {
					_ = f.Close()
					return err
				}
				sinceSync = 0
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			_ = f.Close()
			return rerr
		}
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// syncEvery is how many received snapshot bytes go to disk between syncs.
const syncEvery = 16 << 20

// checkSnapshotFile opens a received snapshot and checks that it is a Grove
// state at the announced index.
func checkSnapshotFile(path string, index uint64) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if err := precheckFile(path); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("core: snapshot file %q is corrupt: %v: %w", path, r, grove.ErrCorrupt)
		}
	}()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("core: snapshot file %q: %v: %w", path, err, grove.ErrCorrupt)
	}
	defer func() { _ = db.Close() }()
	if err := walkAll(db, path); err != nil {
		return err
	}
	return db.View(func(tx *bbolt.Tx) error {
		got, _, err := fsm.Applied(fsm.Bolt(tx))
		if err != nil {
			return fmt.Errorf("core: snapshot file %q: %v: %w", path, err, grove.ErrCorrupt)
		}
		if got != index {
			return fmt.Errorf("core: snapshot file %q holds index %d, announced %d: %w", path, got, index, grove.ErrCorrupt)
		}
		if tx.Bucket(bucketMeta) == nil {
			return fmt.Errorf("core: snapshot file %q is not a Grove data file: %w", path, grove.ErrCorrupt)
		}
		return nil
	})
}

// installSnapshot replaces the state with a received snapshot inside the
// Ready's transaction (loop goroutine). The caller holds stateMu and
// discards the state layers once the transaction commits.
func (n *Node) installSnapshot(tx *bbolt.Tx, snap *pb.Snapshot) error {
	start := time.Now()
	meta := snap.GetMetadata()
	path, ok := n.loopState.snapFiles[meta.GetIndex()]
	if !ok {
		return fmt.Errorf("core: raft installs snapshot %d but no file was received for it: %w", meta.GetIndex(), grove.ErrCorrupt)
	}
	src, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("core: open snapshot %q: %w", path, err)
	}
	// src must stay mapped until the outer transaction commits: bbolt keeps
	// references to the keys and values put until then.
	n.loopState.snapSrc = src
	// The watch manager stays locked until the install's events are fired
	// after the commit (persist took it and calls endInstall). The state
	// before is what reads saw: the layers over bbolt (persist holds
	// stateMu).
	watched := n.loopState.watched
	before := readPathStates(fsm.NewView(fsm.Bolt(tx), n.layers...), watched)
	err = src.View(func(stx *bbolt.Tx) error { return fsm.CopyState(tx, stx) })
	if err != nil {
		return fmt.Errorf("core: install snapshot %d: %w", meta.GetIndex(), err)
	}
	if err := src.View(func(stx *bbolt.Tx) error {
		if err := copyClusterID(tx, stx); err != nil {
			return err
		}
		return copyPeers(tx, stx)
	}); err != nil {
		return fmt.Errorf("core: install snapshot peers: %w", err)
	}
	n.loopState.snapEvents, n.loopState.snapEventACLs = diffEvents(before, readPathStates(fsm.Bolt(tx), watched), int64(meta.GetIndex()))
	n.confState = meta.GetConfState()
	if err := saveConfState(fsm.Bolt(tx), n.confState); err != nil {
		return err
	}
	if o := n.cfg.Observer; o != nil {
		o.ObserveSnapshot("install", time.Since(start))
	}
	n.log.Info("installed snapshot", "index", meta.GetIndex(), "term", meta.GetTerm())
	return nil
}

// removeSnapFiles deletes received snapshot files up to index.
func (n *Node) removeSnapFiles(index uint64) {
	for i, p := range n.loopState.snapFiles {
		if i <= index {
			_ = os.Remove(p)
			delete(n.loopState.snapFiles, i)
		}
	}
}

// dropClosedSessions forgets the watches of sessions a snapshot install
// closed (their close was never applied here one by one).
func (n *Node) dropClosedSessions() {
	for _, id := range n.watches.sessionsWithWatches() {
		if _, ok, err := n.SessionInfo(id); err == nil && !ok {
			n.watches.removeSession(id)
		}
	}
}

// removeStaleSnapshots deletes received snapshot files a crash left behind:
// a snapshot is installed inside a Ready transaction or not at all, so at
// start-up none of them is needed.
func removeStaleSnapshots(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, "snap-*.db*"))
	for _, p := range matches {
		_ = os.Remove(p)
	}
}
