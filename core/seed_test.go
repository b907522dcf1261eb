package core_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/internal/fsm"
)

type record struct {
	path string
	rec  []byte
}

// export returns n's exported records and applied index.
func export(t *testing.T, n *core.Node) ([]record, uint64) {
	t.Helper()
	var recs []record
	var index uint64
	err := n.View(func(tx *bbolt.Tx) error {
		var err error
		if index, _, err = fsm.Applied(fsm.Bolt(tx)); err != nil {
			return err
		}
		_, err = fsm.Export(fsm.Bolt(tx), func(path string, rec []byte) error {
			recs = append(recs, record{path, append([]byte(nil), rec...)})
			return nil
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs, index
}

func seedFrom(recs []record, index uint64) coretest.Option {
	return coretest.WithConfig(func(cfg *core.Config) {
		err := core.Seed(cfg.DataDir, cfg.ID, index, func(put func(string, []byte) error) error {
			for _, r := range recs {
				if err := put(r.path, r.rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			panic(err)
		}
	})
}

// Three nodes seeded from one export form a new cluster holding exactly the
// exported tree (ephemerals dropped, child counts corrected), and its zxids
// and sequence numbers continue above the old ones.
func TestSeededClusterHoldsTheExportedTree(t *testing.T) {
	src := coretest.NewCluster(t, 3)
	leader := src.WaitLeader(t.Context())
	ctx := t.Context()
	s := mustSession(t, leader, 10*time.Second)
	for _, c := range []struct {
		path string
		mode grove.CreateMode
	}{
		{"/app", grove.ModePersistent}, {"/app/cfg", grove.ModePersistent}, {"/app/jobs", grove.ModeContainer},
		{"/app/jobs/j-", grove.ModePersistentSequential}, {"/app/jobs/j-", grove.ModePersistentSequential},
		{"/app/live", grove.ModeEphemeral},
	} {
		if _, err := s.create(ctx, c.path, []byte("data of "+c.path), c.mode); err != nil {
			t.Fatal(c.path, err)
		}
	}
	recs, index := export(t, leader)
	for _, r := range recs {
		if r.path == "/app/live" {
			t.Fatal("an ephemeral was exported")
		}
	}

	dst := coretest.NewCluster(t, 3, seedFrom(recs, index))
	dl := dst.WaitLeader(ctx)
	dst.WaitConverged(ctx)
	if id := dl.ClusterID(); id == "" || id == leader.ClusterID() {
		t.Fatalf("cluster IDs: new %q, old %q", id, leader.ClusterID())
	}
	got, _ := export(t, dl)
	if len(got) != len(recs) {
		t.Fatalf("restored %d nodes, exported %d", len(got), len(recs))
	}
	for i, r := range recs {
		a, _ := fsm.DecodeRecord(r.rec)
		b, _ := fsm.DecodeRecord(got[i].rec)
		if r.path == "/app" {
			a.Stat.NumChildren-- // the ephemeral is gone
		}
		if got[i].path != r.path || string(a.Data) != string(b.Data) || a.Stat != b.Stat {
			t.Fatalf("node %d: exported %s %+v, restored %s %+v", i, r.path, a.Stat, got[i].path, b.Stat)
		}
	}
	s2 := mustSession(t, dl, 10*time.Second)
	p, err := s2.create(ctx, "/app/jobs/j-", nil, grove.ModePersistentSequential)
	if err != nil || !strings.HasSuffix(p, fmt.Sprintf("%010d", 2)) {
		t.Fatalf("sequential create after restore: %q %v", p, err)
	}
	_, stat, _, err := dl.Get(ctx, core.Read{}, p)
	if err != nil || stat.Czxid <= int64(index) {
		t.Fatalf("new node's czxid %d, seed index %d: %v", stat.Czxid, index, err)
	}
	// Restarted, the seeded nodes come back as an ordinary cluster.
	id := dl.ID()
	dst.Crash(id)
	dst.Restart(id)
	dst.WaitLeader(ctx)
	dst.WaitConverged(ctx)
}

// A seeded data dir refuses to start without bootstrap peers, and Seed
// refuses a dir that holds a data file.
func TestSeedRefusals(t *testing.T) {
	src := coretest.NewCluster(t, 1)
	n := src.WaitLeader(t.Context())
	recs, index := export(t, n)
	dir := t.TempDir()
	fill := func(put func(string, []byte) error) error {
		for _, r := range recs {
			if err := put(r.path, r.rec); err != nil {
				return err
			}
		}
		return nil
	}
	if err := core.Seed(dir, 7, index, fill); err != nil {
		t.Fatal(err)
	}
	if !core.Seeded(dir) {
		t.Fatal("Seeded = false after Seed")
	}
	if err := core.Seed(dir, 7, index, fill); err == nil {
		t.Fatal("Seed over an existing data file succeeded")
	}
	cfg := coretest.FastConfig()
	cfg.ID, cfg.DataDir = 7, dir
	if _, err := core.StartNode(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "restored from a backup") {
		t.Fatalf("start without peers: %v", err)
	}
	bad := t.TempDir()
	err := core.Seed(bad, 7, index, func(put func(string, []byte) error) error {
		return put("/not-root", recs[0].rec)
	})
	if !errors.Is(err, grove.ErrCorrupt) {
		t.Fatalf("seed starting below the root: %v", err)
	}
}
