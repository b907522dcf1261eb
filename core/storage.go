package core

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime/debug"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/fsm"
)

// The data file holds raft's log and state next to the state machine's
// buckets (package fsm): the log writer's transactions append entries and,
// in the same commit, write the state layers that are due (doc.go,
// "Storage"), so log and state can never be torn apart by a crash.
const dataFileName = "grove.db"

// initialMmapSize is the size bbolt maps at open: 16 GiB of address space
// on 64-bit machines.
const initialMmapSize = 16 << 30

// formatMarker identifies a Grove data file; a bbolt file without it is
// foreign and refused.
var formatMarker = []byte("grove-data-v1")

var (
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
		Timeout:         0,
	})
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
			if _, err := tx.CreateBucket(bucketLog); err != nil {
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
			if tx.Bucket(bucketLog) == nil {
				return fmt.Errorf("core: data file %q has no raft log bucket: %w", path, grove.ErrCorrupt)
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
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 0})
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

// raftState is what a restarting node loads from disk.
type raftState struct {
	hard         *pb.HardState
	conf         *pb.ConfState
	appliedIndex uint64
	appliedTerm  uint64
	entries      []*pb.Entry // the log tail after appliedIndex
}

// loadRaftState reads the hard state, conf state, applied index and the log
// tail past the applied index. Undecodable records wrap grove.ErrCorrupt.
func loadRaftState(db *bbolt.DB) (*raftState, error) {
	rs := &raftState{hard: &pb.HardState{}, conf: &pb.ConfState{}}
	err := db.View(func(tx *bbolt.Tx) error {
		var err error
		if rs.appliedIndex, rs.appliedTerm, err = fsm.Applied(fsm.Bolt(tx)); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if b := meta.Get(keyHard); b != nil {
			if err := proto.Unmarshal(b, rs.hard); err != nil {
				return fmt.Errorf("core: decode hard state: %v: %w", err, grove.ErrCorrupt)
			}
		}
		if b := meta.Get(keyConf); b != nil {
			if err := proto.Unmarshal(b, rs.conf); err != nil {
				return fmt.Errorf("core: decode conf state: %v: %w", err, grove.ErrCorrupt)
			}
		}
		c := tx.Bucket(bucketLog).Cursor()
		want := rs.appliedIndex + 1
		for k, v := c.Seek(u64key(want)); k != nil; k, v = c.Next() {
			e := &pb.Entry{}
			if err := proto.Unmarshal(v, e); err != nil {
				return fmt.Errorf("core: decode log entry %d: %v: %w", binary.BigEndian.Uint64(k), err, grove.ErrCorrupt)
			}
			if e.GetIndex() != want {
				return fmt.Errorf("core: log has a gap: want entry %d, found %d: %w", want, e.GetIndex(), grove.ErrCorrupt)
			}
			rs.entries = append(rs.entries, e)
			want++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rs.hard.GetCommit() < rs.appliedIndex {
		return nil, fmt.Errorf("core: applied index %d is past the commit index %d: %w", rs.appliedIndex, rs.hard.GetCommit(), grove.ErrCorrupt)
	}
	if last := rs.appliedIndex + uint64(len(rs.entries)); rs.hard.GetCommit() > last {
		return nil, fmt.Errorf("core: commit index %d is past the last log entry %d: %w", rs.hard.GetCommit(), last, grove.ErrCorrupt)
	}
	return rs, nil
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

// saveEntries writes new log entries, first deleting any conflicting suffix
// they replace.
func saveEntries(tx *bbolt.Tx, ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	b := tx.Bucket(bucketLog)
	c := b.Cursor()
	for k, _ := c.Seek(u64key(ents[0].GetIndex())); k != nil; k, _ = c.Seek(u64key(ents[0].GetIndex())) {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for _, e := range ents {
		v, err := proto.Marshal(e)
		if err != nil {
			return fmt.Errorf("core: encode entry %d: %w", e.GetIndex(), err)
		}
		if err := b.Put(u64key(e.GetIndex()), v); err != nil {
			return err
		}
	}
	return nil
}

func saveHardState(tx *bbolt.Tx, hs *pb.HardState) error {
	v, err := proto.Marshal(hs)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyHard, v)
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

// compactLog deletes log entries up to and including index, at most limit
// of them; done reports whether none up to index remain.
func compactLog(tx *bbolt.Tx, index uint64, limit int) (done bool, err error) {
	b := tx.Bucket(bucketLog)
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= index; k, _ = c.First() {
		if limit == 0 {
			return false, nil
		}
		if err := b.Delete(k); err != nil {
			return false, err
		}
		limit--
	}
	return true, nil
}

// clearLog deletes every log entry (a snapshot replaces the log).
func clearLog(tx *bbolt.Tx) error {
	if err := tx.DeleteBucket(bucketLog); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	_, err := tx.CreateBucket(bucketLog)
	return err
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
