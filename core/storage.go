package core

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/fsm"
	"github.com/grovekit/grove/internal/wal"
)

// The state file (bbolt) holds the state machine's buckets (package fsm)
// with their applied index, the raft conf state and peer addresses that go
// with them, and the cluster identity. raft's log and hard state live in
// the write-ahead log beside it (logDirName, package internal/wal). See
// doc.go, "Storage".
const dataFileName = "grove.db"

// logDirName is the directory of the write-ahead log, inside the data dir.
const logDirName = "wal"

// initialMmapSize is the size bbolt maps at open: 16 GiB of address space
// on 64-bit machines.
const initialMmapSize = 16 << 30

// formatMarker identifies a Grove data file; a bbolt file without it is
// foreign and refused.
var formatMarker = []byte("grove-data-v1")

// ErrDataDirInUse is returned by StartNode (and Seed) when another
// process, or another node in this one, has the data dir's data file open:
// two nodes on one data dir would destroy it.
var ErrDataDirInUse = errors.New("core: data dir in use by another process")

// lockWait is how long opening the data file waits for another holder's
// lock before it gives up with ErrDataDirInUse.
const lockWait = time.Second

// inUse turns bbolt's lock timeout into ErrDataDirInUse.
func inUse(dir string, err error) error {
	if errors.Is(err, berrors.ErrTimeout) {
		return dataDirInUse(dir)
	}
	return nil
}

// dataDirInUse is the error for a data dir another process holds.
func dataDirInUse(dir string) error {
	return fmt.Errorf("core: data dir %q: another process has its data file open (is a grove server already running on it?): %w", dir, ErrDataDirInUse)
}

var (
	// bucketLog and keyHard held raft's log and hard state in data files
	// written before the log moved to its own file; openLog moves them.
	bucketLog  = []byte("raft.log")  // index (8 bytes BE) → marshalled raftpb.Entry
	bucketMeta = []byte("raft.meta") // keys below
	// bucketPeers maps raft ID (8 bytes BE) → transport address, as conf
	// changes announced them, so a restarted node can reach its peers
	// before any gossip arrives.
	bucketPeers = []byte("raft.peers")
	keyFormat   = []byte("format")
	keyHard     = []byte("hardstate")
	keyConf     = []byte("confstate")
	keyNodeID   = []byte("nodeid")
)

func u64key(i uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], i)
	return b[:]
}

// openDB opens (or creates) the data file in dir and checks that it is a
// Grove data file for this node id. A corrupt, truncated or foreign file
// returns an error naming the file and wrapping grove.ErrCorrupt; bbolt
// panics on some corrupt files, so the open is guarded.
func openDB(dir string, id uint64, noSync bool) (db *bbolt.DB, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("core: data dir %q: %w", dir, err)
	}
	path := filepath.Join(dir, dataFileName)
	st, statErr := os.Stat(path)
	existed := statErr == nil
	if existed && st.Size() == 0 {
		return nil, fmt.Errorf("core: data file %q is empty (truncated?); remove it to start afresh: %w", path, grove.ErrCorrupt)
	}
	if existed {
		if err := precheckFile(path); err != nil {
			return nil, err
		}
	}
	// A corrupt page can make bbolt index out of range or read outside the
	// file: with panic-on-fault both become panics this goroutine recovers.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db = nil
			err = fmt.Errorf("core: data file %q is corrupt: %v: %w", path, r, grove.ErrCorrupt)
		}
	}()
	if existed {
		// Check the whole file read-only first, here where a fault is
		// recovered (see checkDataFile).
		if err := checkDataFile(path); err != nil {
			return nil, err
		}
	}
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{
		NoSync: noSync,
		// The free list is not written by every commit: it was, and every
		// commit wrote (and sorted) the whole list of free pages, a cost
		// that grew with the file (etcd runs bbolt this way too). bbolt
		// reads the list a clean Close wrote (closeDB), or after a crash
		// rebuilds it at open by walking the file checkDataFile has just
		// checked.
		NoFreelistSync:  true,
		PreLoadFreelist: true,
		FreelistType:    bbolt.FreelistMapType,
		// Map far beyond the file (address space only): a long read
		// transaction, such as a snapshot stream, blocks the writer's remap,
		// so the writer must not need one below this size.
		InitialMmapSize: initialMmapSize,
		Timeout:         lockWait,
	})
	if err := inUse(dir, err); err != nil {
		return nil, err
	}
	if err != nil {
		if existed {
			return nil, fmt.Errorf("core: open data file %q: %v: %w", path, err, grove.ErrCorrupt)
		}
		return nil, fmt.Errorf("core: open data file %q: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if fi, err := os.Stat(path); err == nil && fi.Size() < tx.Size() {
			return fmt.Errorf("core: data file %q is truncated: %d bytes, its header says %d: %w", path, fi.Size(), tx.Size(), grove.ErrCorrupt)
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if len(bucketNames(tx)) > 0 {
				return fmt.Errorf("core: data file %q is not a Grove data file (no format marker): %w", path, grove.ErrCorrupt)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyFormat, formatMarker); err != nil {
				return err
			}
			if err := meta.Put(keyNodeID, u64key(id)); err != nil {
				return err
			}
		} else {
			if !bytes.Equal(meta.Get(keyFormat), formatMarker) {
				return fmt.Errorf("core: data file %q has format %q, want %q: %w", path, meta.Get(keyFormat), formatMarker, grove.ErrCorrupt)
			}
			if got := meta.Get(keyNodeID); len(got) != 8 || binary.BigEndian.Uint64(got) != id {
				return fmt.Errorf("core: data file %q belongs to another node (id %x), not %d: %w", path, got, id, grove.ErrCorrupt)
			}
		}
		if _, err := tx.CreateBucketIfNotExists(bucketPeers); err != nil {
			return err
		}
		return fsm.Init(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// checkDataFile opens an existing data file read-only and checks it whole:
// its size against its header, every key and value through walkAll, and,
// when the file holds a free list (written by a clean Close), bbolt's own
// consistency check (page references, key order within and across pages).
// Faults and panics become errors wrapping grove.ErrCorrupt (the caller has
// panic-on-fault on and recovers).
//
// After a crash the file holds no free list and bbolt rebuilds it at open
// by walking the pages in a goroutine of its own; a corruption that
// walkAll cannot see (a branch page's keys out of range, say) then still
// fails the open with ErrCorrupt, but leaves that goroutine blocked and the
// file open in this process. Running bbolt's check here in that case would
// rebuild the list the same way, so it is not run.
func checkDataFile(path string) error {
	synced, err := freelistSynced(path)
	if err != nil {
		return err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: lockWait})
	if err := inUse(filepath.Dir(path), err); err != nil {
		return err
	}
	if err != nil {
		return fmt.Errorf("core: open data file %q: %v: %w", path, err, grove.ErrCorrupt)
	}
	defer func() { _ = db.Close() }()
	err = db.View(func(tx *bbolt.Tx) error {
		if fi, err := os.Stat(path); err == nil && fi.Size() < tx.Size() {
			return fmt.Errorf("core: data file %q is truncated: %d bytes, its header says %d: %w", path, fi.Size(), tx.Size(), grove.ErrCorrupt)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := walkAll(db, path); err != nil {
		return err
	}
	if !synced {
		return nil
	}
	return db.View(func(tx *bbolt.Tx) error {
		var first error
		for err := range tx.Check() { // drained whole: the checker's goroutine ends
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return fmt.Errorf("core: data file %q is corrupt: %v: %w", path, first, grove.ErrCorrupt)
		}
		return nil
	})
}

// closeDB writes the free list (so the next open reads it instead of
// rebuilding it, and checkDataFile can run bbolt's full check) and closes
// the data file.
func closeDB(db *bbolt.DB) error {
	db.NoFreelistSync = false // no transaction runs: the loop has stopped
	err := db.Update(func(*bbolt.Tx) error { return nil })
	return errors.Join(err, db.Close())
}

// walkAll reads every key and every value byte of every bucket once, so a
// corrupt page (a bad pointer, a length past the end of the file) is found
// at start-up, as an error through the caller's recover, rather than by a
// request later. It costs one sequential pass over the data.
func walkAll(db *bbolt.DB, path string) error {
	var sum uint32
	return db.View(func(tx *bbolt.Tx) error {
		var walk func(b *bbolt.Bucket) error
		walk = func(b *bbolt.Bucket) error {
			c := b.Cursor()
			prev := []byte(nil)
			for k, v := c.First(); k != nil; k, v = c.Next() {
				sum = crc32.Update(sum, crc32.IEEETable, v) // touch every value byte
				if prev != nil && bytes.Compare(prev, k) >= 0 {
					return fmt.Errorf("core: data file %q has keys out of order: %w", path, grove.ErrCorrupt)
				}
				prev = append(prev[:0], k...)
				if v == nil {
					nb := b.Bucket(k)
					if nb == nil {
						return fmt.Errorf("core: data file %q has a dangling nested bucket: %w", path, grove.ErrCorrupt)
					}
					if err := walk(nb); err != nil {
						return err
					}
				}
			}
			return nil
		}
		return tx.ForEach(func(_ []byte, b *bbolt.Bucket) error { return walk(b) })
	})
}

func bucketNames(tx *bbolt.Tx) [][]byte {
	var names [][]byte
	_ = tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		names = append(names, append([]byte(nil), name...))
		return nil
	})
	return names
}

// openLog opens the write-ahead log in dir and reads it back. A data file
// written before the log had a file of its own still holds raft's log and
// hard state: they are moved into a new log first (built aside, then
// renamed into place, and only then deleted from the data file).
func openLog(dir string, db *bbolt.DB, noSync bool) (*wal.WAL, *wal.Replay, error) {
	logDir := filepath.Join(dir, logDirName)
	opts := wal.Options{NoSync: noSync}
	if _, err := os.Stat(logDir); errors.Is(err, os.ErrNotExist) {
		if err := migrateLog(dir, db, opts); err != nil {
			return nil, nil, err
		}
	}
	err := db.Update(func(tx *bbolt.Tx) error { // leftovers of a migration
		if tx.Bucket(bucketLog) != nil {
			if err := tx.DeleteBucket(bucketLog); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Delete(keyHard)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("core: remove the old log from the data file: %w", err)
	}
	w, rp, err := wal.Open(logDir, opts)
	if err != nil {
		if errors.Is(err, wal.ErrCorrupt) {
			return nil, nil, fmt.Errorf("core: log %q: %w: %w", logDir, err, grove.ErrCorrupt)
		}
		return nil, nil, fmt.Errorf("core: open log %q: %w", logDir, err)
	}
	return w, rp, nil
}

// migrateLog writes the log and hard state a data file of the old layout
// holds into a new write-ahead log in dir, if it holds any.
func migrateLog(dir string, db *bbolt.DB, opts wal.Options) error {
	var ents []wal.Entry
	var state []byte
	err := db.View(func(tx *bbolt.Tx) error {
		state = bytes.Clone(tx.Bucket(bucketMeta).Get(keyHard))
		b := tx.Bucket(bucketLog)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			e := &pb.Entry{}
			if err := proto.Unmarshal(v, e); err != nil {
				return fmt.Errorf("core: decode log entry %x: %v: %w", k, err, grove.ErrCorrupt)
			}
			ents = append(ents, wal.Entry{Index: e.GetIndex(), Term: e.GetTerm(), Data: bytes.Clone(v)})
			return nil
		})
	})
	if err != nil || (len(ents) == 0 && state == nil) {
		return err
	}
	tmp := filepath.Join(dir, logDirName+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	w, _, err := wal.Open(tmp, opts)
	if err != nil {
		return err
	}
	err = w.Append(ents, state)
	if err == nil {
		err = w.Sync()
	}
	if err = errors.Join(err, w.Close()); err != nil {
		return fmt.Errorf("core: move the log out of the data file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, logDirName)); err != nil {
		return fmt.Errorf("core: move the log out of the data file: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}

// raftState is what a restarting node loads from disk.
type raftState struct {
	hard         *pb.HardState
	conf         *pb.ConfState
	appliedIndex uint64
	appliedTerm  uint64
	entries      []*pb.Entry // the log tail after appliedIndex
	// logBehind: the log's entries did not lead to appliedIndex and were
	// dropped; the log must restart after it before anything is appended.
	logBehind bool
}

// loadRaftState reads the applied index and conf state from the state file
// and the hard state and the log tail past the applied index from the
// log's replay. Undecodable records wrap grove.ErrCorrupt.
//
// The state file is durable at an applied index A no newer than the log
// (entries are applied only once they are durable here), except after a
// crash between a snapshot's install into the state file and the log's
// restart after it (installInline): the log may then end before A, or
// hold a different history at A. Its tail is dropped then; every entry up
// to A is in the state. The commit index is raised to A if the hard state
// is older (a commit-only change is not synced; A was committed).
func loadRaftState(db *bbolt.DB, rp *wal.Replay, log *slog.Logger) (*raftState, error) {
	rs := &raftState{hard: &pb.HardState{}, conf: &pb.ConfState{}}
	err := db.View(func(tx *bbolt.Tx) error {
		var err error
		if rs.appliedIndex, rs.appliedTerm, err = fsm.Applied(fsm.Bolt(tx)); err != nil {
			return err
		}
		rs.conf, err = readConfState(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if rp.State != nil {
		if err := proto.Unmarshal(rp.State, rs.hard); err != nil {
			return nil, fmt.Errorf("core: decode hard state: %v: %w", err, grove.ErrCorrupt)
		}
	}
	a := rs.appliedIndex
	tail, dropped := rp.Entries, false
	if len(tail) > 0 {
		first, last := tail[0].Index, tail[len(tail)-1].Index
		switch {
		case a+1 < first:
			return nil, fmt.Errorf("core: the log starts at entry %d but the state is at %d: %w", first, a, grove.ErrCorrupt)
		case a > last:
			tail, dropped = nil, true
		case a >= first && tail[a-first].Term != rs.appliedTerm:
			tail, dropped = nil, true
		default:
			tail = tail[a+1-first:]
		}
	} else if rp.ResetIndex > a {
		return nil, fmt.Errorf("core: the log restarts after %d but the state is at %d: %w", rp.ResetIndex, a, grove.ErrCorrupt)
	}
	if dropped {
		log.Warn("log behind an installed snapshot dropped", "applied", a, "entries", len(rp.Entries))
		rs.logBehind = true
	}
	for _, we := range tail {
		e := &pb.Entry{}
		if err := proto.Unmarshal(we.Data, e); err != nil {
			return nil, fmt.Errorf("core: decode log entry %d: %v: %w", we.Index, err, grove.ErrCorrupt)
		}
		if e.GetIndex() != we.Index || e.GetTerm() != we.Term {
			return nil, fmt.Errorf("core: log entry %d/%d is filed as %d/%d: %w", e.GetIndex(), e.GetTerm(), we.Index, we.Term, grove.ErrCorrupt)
		}
		rs.entries = append(rs.entries, e)
	}
	last := a + uint64(len(rs.entries))
	switch c := rs.hard.GetCommit(); {
	case c < a:
		rs.hard.Commit = new(a)
	case c > last && dropped:
		rs.hard.Commit = new(a)
	case c > last:
		return nil, fmt.Errorf("core: commit index %d is past the last log entry %d: %w", c, last, grove.ErrCorrupt)
	}
	return rs, nil
}

// finishReset completes a log restart a crash interrupted (see
// loadRaftState): the log restarts after the applied index, with the hard
// state, so that the entries appended next follow it on disk too.
func (rs *raftState) finishReset(w *wal.WAL) error {
	if !rs.logBehind {
		return nil
	}
	state, err := proto.Marshal(rs.hard)
	if err != nil {
		return fmt.Errorf("core: encode hard state: %w", err)
	}
	if err := w.Reset(rs.appliedIndex, rs.appliedTerm, state, nil); err != nil {
		return fmt.Errorf("core: restart the log after %d: %w", rs.appliedIndex, err)
	}
	return nil
}

// memoryStorage builds raft's in-memory storage from the loaded state: a
// metadata-only snapshot at the applied index, then the log tail.
func (rs *raftState) memoryStorage() (*raft.MemoryStorage, error) {
	ms := raft.NewMemoryStorage()
	if rs.appliedIndex > 0 {
		snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			Index: new(rs.appliedIndex), Term: new(rs.appliedTerm), ConfState: rs.conf,
		}}
		if err := ms.ApplySnapshot(snap); err != nil {
			return nil, fmt.Errorf("core: restore snapshot point: %w", err)
		}
	}
	if err := ms.SetHardState(rs.hard); err != nil {
		return nil, err
	}
	if err := ms.Append(rs.entries); err != nil {
		return nil, fmt.Errorf("core: restore log tail: %w", err)
	}
	return ms, nil
}

func saveConfState(tx fsm.Tx, cs *pb.ConfState) error {
	v, err := proto.Marshal(cs)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyConf, v)
}

func readConfState(tx *bbolt.Tx) (*pb.ConfState, error) {
	cs := &pb.ConfState{}
	if b := tx.Bucket(bucketMeta).Get(keyConf); b != nil {
		if err := proto.Unmarshal(b, cs); err != nil {
			return nil, fmt.Errorf("core: decode conf state: %v: %w", err, grove.ErrCorrupt)
		}
	}
	return cs, nil
}

// loadPeers returns the peer addresses recorded by applied conf changes.
func loadPeers(db *bbolt.DB) (map[uint64]string, error) {
	peers := map[uint64]string{}
	err := db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPeers).ForEach(func(k, v []byte) error {
			if len(k) == 8 {
				peers[binary.BigEndian.Uint64(k)] = string(v)
			}
			return nil
		})
	})
	return peers, err
}

// savePeer records (addr != "") or forgets a peer's address.
func savePeer(tx fsm.Tx, id uint64, addr string) error {
	b := tx.Bucket(bucketPeers)
	if addr == "" {
		return b.Delete(u64key(id))
	}
	return b.Put(u64key(id), []byte(addr))
}

// configData renders the members of cs as ZooKeeper's dynamic
// configuration (the data of /zookeeper/config): one line per member,
// server.ID=host:port:port:role with its peer address (Grove has one peer
// port where ZooKeeper has two) and participant for a voter, observer for
// a learner, then version= and the applied index in hex. A cluster of one
// voter is standalone, whose configuration ZooKeeper leaves empty. The
// lines carry no client address: clients that follow the configuration
// (Curator's ensemble tracker) keep the servers they were given.
func configData(tx fsm.Tx, cs *pb.ConfState, index uint64) []byte {
	voters, learners := cs.GetVoters(), cs.GetLearners()
	if len(voters) <= 1 && len(learners) == 0 {
		return nil
	}
	b := tx.Bucket(bucketPeers)
	var out []byte
	line := func(id uint64, role string) {
		addr := ""
		if b != nil {
			addr = string(b.Get(u64key(id)))
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			host, port = addr, "0"
		}
		out = fmt.Appendf(out, "server.%d=%s:%s:%s:%s\n", id, host, port, port, role)
	}
	for _, id := range slices.Sorted(slices.Values(voters)) {
		line(id, "participant")
	}
	for _, id := range slices.Sorted(slices.Values(learners)) {
		line(id, "observer")
	}
	return fmt.Appendf(out, "version=%x", index)
}

// copyPeers replaces the peer addresses with those of a snapshot.
func copyPeers(dst, src *bbolt.Tx) error {
	sb := src.Bucket(bucketPeers)
	if sb == nil {
		return nil
	}
	if err := dst.DeleteBucket(bucketPeers); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	db, err := dst.CreateBucket(bucketPeers)
	if err != nil {
		return err
	}
	return sb.ForEach(func(k, v []byte) error {
		return db.Put(append([]byte(nil), k...), append([]byte(nil), v...))
	})
}
