package core

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/fsm"
	"github.com/grovekit/grove/internal/wal"
)

// stateAt returns a state file in a temporary dir whose applied index is
// index in term.
func stateAt(t *testing.T, index, term uint64) *bbolt.DB {
	t.Helper()
	db, err := openDB(t.TempDir(), 1, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if index > 0 {
		if err := db.Update(func(tx *bbolt.Tx) error { return fsm.SetApplied(fsm.Bolt(tx), index, term) }); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// replayOf builds a log replay of entries from..to in term and a hard state
// with commit.
func replayOf(t *testing.T, from, to, term, commit uint64) *wal.Replay {
	t.Helper()
	rp := &wal.Replay{}
	for i := from; i <= to; i++ {
		b, err := proto.Marshal(&pb.Entry{Index: new(i), Term: new(term)})
		if err != nil {
			t.Fatal(err)
		}
		rp.Entries = append(rp.Entries, wal.Entry{Index: i, Term: term, Data: b})
	}
	hs, err := proto.Marshal(&pb.HardState{Term: new(term), Commit: new(commit)})
	if err != nil {
		t.Fatal(err)
	}
	rp.State = hs
	return rp
}

// TestLoadRaftState covers how the state file's applied index and the
// log's replay are put together at start, including the crash window of
// a snapshot install (state file replaced, log not yet restarted).
func TestLoadRaftState(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name                string
		applied, term       uint64
		rp                  func(t *testing.T) *wal.Replay
		wantFirst, wantLast uint64 // 0, 0: no tail
		wantCommit          uint64
		wantCorrupt         bool
	}{
		{"tail after the applied index", 10, 2, func(t *testing.T) *wal.Replay { return replayOf(t, 5, 20, 2, 18) }, 11, 20, 18, false},
		{"commit below applied is raised", 10, 2, func(t *testing.T) *wal.Replay { return replayOf(t, 5, 20, 2, 7) }, 11, 20, 10, false},
		{"log ends at the applied index", 20, 2, func(t *testing.T) *wal.Replay { return replayOf(t, 5, 20, 2, 20) }, 0, 0, 20, false},
		{"snapshot installed, log behind it", 500, 3, func(t *testing.T) *wal.Replay { return replayOf(t, 5, 20, 2, 20) }, 0, 0, 500, false},
		{"snapshot installed, log of another history at it", 15, 3, func(t *testing.T) *wal.Replay { return replayOf(t, 5, 20, 2, 20) }, 0, 0, 15, false},
		{"log starts after a gap", 10, 2, func(t *testing.T) *wal.Replay { return replayOf(t, 15, 20, 2, 20) }, 0, 0, 0, true},
		{"commit past the log", 10, 2, func(t *testing.T) *wal.Replay { return replayOf(t, 5, 20, 2, 25) }, 0, 0, 0, true},
		{"log restarted after a newer snapshot than the state", 10, 2, func(t *testing.T) *wal.Replay {
			rp := replayOf(t, 1, 0, 2, 0)
			rp.ResetIndex, rp.ResetTerm = 30, 2
			return rp
		}, 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := stateAt(t, tc.applied, tc.term)
			rs, err := loadRaftState(db, tc.rp(t), discard)
			if tc.wantCorrupt {
				if !errors.Is(err, grove.ErrCorrupt) {
					t.Fatalf("load: %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var first, last uint64
			if n := len(rs.entries); n > 0 {
				first, last = rs.entries[0].GetIndex(), rs.entries[n-1].GetIndex()
			}
			if first != tc.wantFirst || last != tc.wantLast || rs.hard.GetCommit() != tc.wantCommit {
				t.Fatalf("tail %d..%d commit %d, want %d..%d commit %d", first, last, rs.hard.GetCommit(), tc.wantFirst, tc.wantLast, tc.wantCommit)
			}
			if _, err := rs.memoryStorage(); err != nil {
				t.Fatalf("memory storage: %v", err)
			}
		})
	}
}

// TestOldLayoutIsMigrated starts a node on a data dir of the layout before
// the log had a file of its own (log and hard state in the data file): the
// log moves out, the node keeps its data and serves writes.
func TestOldLayoutIsMigrated(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.Peers = 1, dir, []Peer{{ID: 1}}
	cfg.TickInterval, cfg.NoSync = time.Millisecond, true
	ctx := t.Context()
	n, err := StartNode(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := n.CreateSession(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		res, err := n.Submit(ctx, &Request{Session: s.ID, Seq: uint64(i + 1), Op: OpCreate, Path: "/m-", Mode: grove.ModePersistentSequential, ACL: grove.OpenACLUnsafe})
		if err != nil || res.Code != 0 {
			t.Fatalf("create: %v %v", err, res)
		}
	}
	before, applied, err := n.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	// Put the log and hard state back into the data file, as the old
	// layout kept them.
	logDir := filepath.Join(dir, logDirName)
	w, rp, err := wal.Open(logDir, wal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	db, err := bbolt.Open(filepath.Join(dir, dataFileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucketLog)
		if err != nil {
			return err
		}
		for _, e := range rp.Entries {
			if err := b.Put(u64key(e.Index), e.Data); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyHard, rp.State)
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if err := os.RemoveAll(logDir); err != nil {
		t.Fatal(err)
	}
	// The log moves out whole: the same entries and hard state.
	db, err = openDB(dir, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	w, moved, err := openLog(dir, db, true)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	_ = db.Close()
	if !bytes.Equal(moved.State, rp.State) || len(moved.Entries) != len(rp.Entries) || len(rp.Entries) == 0 {
		t.Fatalf("moved %d entries and state %x, want %d and %x", len(moved.Entries), moved.State, len(rp.Entries), rp.State)
	}
	for i := range rp.Entries {
		if moved.Entries[i].Index != rp.Entries[i].Index || !bytes.Equal(moved.Entries[i].Data, rp.Entries[i].Data) {
			t.Fatalf("moved entry %d differs", i)
		}
	}
	cfg.Peers = nil
	n, err = StartNode(ctx, cfg)
	if err != nil {
		t.Fatalf("start on the old layout: %v", err)
	}
	defer func() { _ = n.Close() }()
	after, applied2, err := n.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if after != before || applied2 < applied {
		t.Fatalf("state after migration %x@%d, want %x@%d", after, applied2, before, applied)
	}
	err = n.data().View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketLog) != nil || tx.Bucket(bucketMeta).Get(keyHard) != nil {
			t.Error("the old log is still in the data file")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.Submit(ctx, &Request{Session: s.ID, Seq: 21, Op: OpCreate, Path: "/after", ACL: grove.OpenACLUnsafe})
	if err != nil || res.Code != 0 {
		t.Fatalf("write after migration: %v %v", err, res)
	}
}

// Regression (found by the snapshot-installed crash point): after a crash
// between a snapshot's install and the log's restart, the log ends before
// the state's applied index. Start must restart the log after that index,
// or the entries appended next land after the old ones with a gap, and
// the following start refuses the log as corrupt.
func TestLogBehindSnapshotIsRestarted(t *testing.T) {
	dir := t.TempDir()
	w, _, err := wal.Open(dir, wal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	old := replayOf(t, 1, 4, 1, 4)
	appendSynced(t, w, old.Entries, old.State)
	closeWAL(t, w)
	w, rp, err := wal.Open(dir, wal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := loadRaftState(stateAt(t, 100, 2), rp, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !rs.logBehind {
		t.Fatal("a log ending at 4 under a state at 100 is not behind")
	}
	if err := rs.finishReset(w); err != nil {
		t.Fatal(err)
	}
	next := replayOf(t, 101, 102, 2, 101)
	appendSynced(t, w, next.Entries, nil)
	closeWAL(t, w)
	w2, rp2, err := wal.Open(dir, wal.Options{NoSync: true})
	if err != nil {
		t.Fatalf("reopen after the restart: %v", err)
	}
	defer closeWAL(t, w2)
	if rp2.ResetIndex != 100 || len(rp2.Entries) != 2 || rp2.Entries[0].Index != 101 {
		t.Fatalf("log after the restart: reset %d, entries %+v", rp2.ResetIndex, rp2.Entries)
	}
	rs2, err := loadRaftState(stateAt(t, 100, 2), rp2, slog.New(slog.DiscardHandler))
	if err != nil || len(rs2.entries) != 2 || rs2.logBehind {
		t.Fatalf("second start: %+v, %v", rs2, err)
	}
}

// appendSynced appends ents and state to w and makes them durable.
func appendSynced(t *testing.T, w *wal.WAL, ents []wal.Entry, state []byte) {
	t.Helper()
	if err := w.Append(ents, state); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
}

func closeWAL(t *testing.T, w *wal.WAL) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Errorf("close log: %v", err)
	}
}

// TestNothingToPersistOnlyForCommitOnlyAppends checks which appends the
// loop takes as durable at once: those with nothing for the disk (no
// entries, no snapshot, no new term or vote) while the writer is idle.
// Everything else must go through the log writer and its fdatasync.
func TestNothingToPersistOnlyForCommitOnlyAppends(t *testing.T) {
	hs := func(term, vote, commit uint64) *pb.Message {
		return &pb.Message{Term: new(term), Vote: new(vote), Commit: new(commit)}
	}
	withEntry := hs(2, 1, 5)
	withEntry.Entries = []*pb.Entry{{Index: new(uint64(6)), Term: new(uint64(2))}}
	withSnap := &pb.Message{Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(2))}}}
	for _, tc := range []struct {
		name     string
		m        *pb.Message
		inFlight int
		want     bool
	}{
		{"commit only", hs(2, 1, 6), 0, true},
		{"no hard state", &pb.Message{}, 0, true},
		{"commit only, writer busy", hs(2, 1, 6), 1, false},
		{"new term", hs(3, 0, 6), 0, false},
		{"new vote", hs(2, 3, 6), 0, false},
		{"entries", withEntry, 0, false},
		{"snapshot", withSnap, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{writer: newLogWriter(nil), lastHS: &pb.HardState{Term: new(uint64(2)), Vote: new(uint64(1)), Commit: new(uint64(5))}}
			n.writer.inFlight = tc.inFlight
			if got := n.nothingToPersist(tc.m); got != tc.want {
				t.Fatalf("nothingToPersist = %v, want %v", got, tc.want)
			}
			wantCommit := uint64(5)
			if tc.want && tc.m.Commit != nil {
				wantCommit = tc.m.GetCommit()
			}
			if got := n.lastHS.GetCommit(); got != wantCommit {
				t.Fatalf("lastHS commit = %d, want %d", got, wantCommit)
			}
		})
	}
}
