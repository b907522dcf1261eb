package core

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"go.etcd.io/bbolt"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/fsm"
	"github.com/grovekit/grove/internal/wal"
)

// seedFile marks a data dir that Seed filled and whose node has not started
// since: for bootstrap purposes the node is fresh (it holds no raft state).
const seedFile = "SEEDED"

var (
	// keySeed (raft.meta) holds the index a seeded state machine starts at
	// until the node first starts with its cluster's peers.
	keySeed = []byte("seed")
	// keyCluster (raft.meta) holds the cluster ID, fixed at bootstrap.
	keyCluster = []byte("cluster")
)

// seedBatch is how many record bytes one transaction of Seed takes.
const seedBatch = 32 << 20

// Seed creates the data file of node id in dir (which must hold none) with
// the state machine filled from exported node records (package fsm's Export
// format, as a backup holds them) and no raft state. fill calls put for
// every record in export order. Started with bootstrap peers
// (Config.Peers), the node forms a new cluster whose log starts after
// index, so zxids stay above every zxid of the exported state; every
// bootstrap voter must be seeded from the same records and index.
//
// Seed writes without fsync and syncs once at the end. On error the data
// file is left incomplete: seed into a scratch directory and move it in
// place on success.
func Seed(dir string, id uint64, index uint64, fill func(put func(path string, rec []byte) error) error) (err error) {
	if index == 0 {
		return errors.New("core: seed: index must be above 0")
	}
	if _, err := os.Stat(filepath.Join(dir, dataFileName)); err == nil {
		return fmt.Errorf("core: seed: %s already holds a data file", dir)
	}
	db, err := openDB(dir, id, true)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}()
	tx, err := db.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	im, err := fsm.NewImporter(tx, index)
	if err != nil {
		return err
	}
	pending := 0
	err = fill(func(path string, rec []byte) error {
		if err := im.Put(path, rec); err != nil {
			return err
		}
		if pending += len(path) + len(rec); pending < seedBatch {
			return nil
		}
		pending = 0
		if err := tx.Commit(); err != nil {
			return err
		}
		if tx, err = db.Begin(true); err != nil {
			return err
		}
		return im.Rebind(tx)
	})
	if err != nil {
		return err
	}
	if err := im.Finish(index); err != nil {
		return err
	}
	if err := tx.Bucket(bucketMeta).Put(keySeed, u64key(index)); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if err := db.Sync(); err != nil {
		return fmt.Errorf("core: seed: sync: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, seedFile), []byte("restored from a backup; not started yet\n"), 0o600)
}

// Seeded reports whether dir holds a data file made by Seed whose node has
// not started with its cluster yet.
func Seeded(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, seedFile))
	return err == nil
}

// startSeeded gives a seeded state machine its raft state: a snapshot point
// at the seed index in term 1 whose configuration is the bootstrap peers.
// The hard state goes to the log first, so a crash before the state file's
// commit leaves the seed to be started again.
func startSeeded(db *bbolt.DB, w *wal.WAL, dir string, peers []Peer) error {
	var index uint64
	err := db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keySeed)
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("core: seed record of %d bytes: %w", len(v), grove.ErrCorrupt)
		}
		if len(peers) == 0 {
			return errors.New("core: this data dir was restored from a backup: start it with the other restored nodes to bootstrap a new cluster (--bootstrap-expect)")
		}
		index = binary.BigEndian.Uint64(v)
		if applied, _, err := fsm.Applied(fsm.Bolt(tx)); err != nil || applied != index {
			return fmt.Errorf("core: seeded at %d but applied %d (%v): %w", index, applied, err, grove.ErrCorrupt)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if index == 0 {
		if Seeded(dir) {
			_ = os.Remove(filepath.Join(dir, seedFile))
		}
		return nil
	}
	hs, err := proto.Marshal(&pb.HardState{Term: new(uint64(1)), Commit: new(index)})
	if err != nil {
		return err
	}
	if err := w.Append(nil, hs); err != nil {
		return err
	}
	if err := w.Sync(); err != nil {
		return err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		cs := &pb.ConfState{}
		for _, p := range peers {
			cs.Voters = append(cs.Voters, p.ID)
			if err := savePeer(fsm.Bolt(tx), p.ID, p.Addr); err != nil {
				return err
			}
		}
		if err := saveConfState(fsm.Bolt(tx), cs); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyCluster, []byte(clusterID(peers, index))); err != nil {
			return err
		}
		return meta.Delete(keySeed)
	})
	if err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, seedFile))
	return nil
}

// clusterID derives a new cluster's ID from its bootstrap voters and the
// index its log starts after (a seed's, else 0): every bootstrapping node
// computes the same one.
func clusterID(peers []Peer, start uint64) string {
	ids := make([]uint64, len(peers))
	for i, p := range peers {
		ids[i] = p.ID
	}
	slices.Sort(ids)
	h := sha256.New()
	_, _ = h.Write(u64key(start))
	for _, id := range ids {
		_, _ = h.Write(u64key(id))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// saveClusterID records the cluster ID at bootstrap.
func saveClusterID(db *bbolt.DB, peers []Peer) error {
	return db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyCluster, []byte(clusterID(peers, 0)))
	})
}

// copyClusterID takes the cluster ID from an installed snapshot's file.
func copyClusterID(dst, src *bbolt.Tx) error {
	sm := src.Bucket(bucketMeta)
	if sm == nil {
		return nil
	}
	if v := sm.Get(keyCluster); v != nil {
		return dst.Bucket(bucketMeta).Put(keyCluster, append([]byte(nil), v...))
	}
	return nil
}

// ClusterID returns the ID the node's cluster got when it was bootstrapped
// (16 hex digits), or "" if this node has not learned it yet (a learner
// before its first snapshot, or a data dir older than cluster IDs).
func (n *Node) ClusterID() string {
	var id string
	_ = n.data().View(func(tx *bbolt.Tx) error {
		id = string(tx.Bucket(bucketMeta).Get(keyCluster))
		return nil
	})
	return id
}
