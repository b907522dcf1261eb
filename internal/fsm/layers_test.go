package fsm

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/testutil"
)

var layersSeed = flag.Uint64("fsm.seed", 0, "seed for the layered-store tests (0: random)")

func testSeed(t *testing.T) uint64 {
	t.Helper()
	return testutil.Seed(t, *layersSeed, "fsm.seed")
}

func mustBolt(t *testing.T) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "kv.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// The view's Get, cursor and KeyN agree with bbolt for random puts and
// deletes spread over a base, a flushed layer and a pending one.
func TestViewMatchesBolt(t *testing.T) {
	seed := testSeed(t)
	// A bucket whose key count layers track (countedBuckets) and one whose
	// count is walked.
	for _, name := range []string{string(bucketNodes), "other"} {
		t.Run(name, func(t *testing.T) { viewMatchesBolt(t, seed, []byte(name)) })
	}
}

func viewMatchesBolt(t *testing.T, seed uint64, name []byte) {
	rng := rand.New(rand.NewPCG(seed, 1))
	ref, lay := mustBolt(t), mustBolt(t)
	for _, db := range []*bbolt.DB{ref, lay} {
		if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket(name); return err }); err != nil {
			t.Fatal(err)
		}
	}
	key := func() []byte { return fmt.Appendf(nil, "k%03d", rng.IntN(200)) }
	layers := []*Layer{NewLayer()}
	for step := range 3000 {
		k := key()
		del := rng.IntN(3) == 0
		v := fmt.Appendf(nil, "v%d", step)
		if err := ref.Update(func(tx *bbolt.Tx) error {
			if del {
				return tx.Bucket(name).Delete(k)
			}
			return tx.Bucket(name).Put(k, v)
		}); err != nil {
			t.Fatal(err)
		}
		err := lay.View(func(tx *bbolt.Tx) error {
			b := NewView(Bolt(tx), layers...).Bucket(name)
			if del {
				return b.Delete(k)
			}
			return b.Put(k, v)
		})
		if err != nil {
			t.Fatal(err)
		}
		switch rng.IntN(50) {
		case 0: // a new layer on top; the old one stays pending
			if len(layers) < 3 {
				layers = append(layers, NewLayer())
			}
		case 1: // flush the oldest layer
			if len(layers) > 1 || rng.IntN(2) == 0 {
				if err := lay.Update(layers[0].FlushTo); err != nil {
					t.Fatal(err)
				}
				layers = layers[1:]
				if len(layers) == 0 {
					layers = []*Layer{NewLayer()}
				}
			}
		}
		if step%37 == 0 || step == 2999 {
			compareBuckets(t, step, ref, lay, layers, name, rng)
		}
	}
}

func compareBuckets(t *testing.T, step int, ref, lay *bbolt.DB, layers []*Layer, name []byte, rng *rand.Rand) {
	t.Helper()
	err := ref.View(func(rtx *bbolt.Tx) error {
		return lay.View(func(ltx *bbolt.Tx) error {
			rb, lb := Bolt(rtx).Bucket(name), NewView(Bolt(ltx), layers...).Bucket(name)
			if rb.KeyN() != lb.KeyN() {
				t.Fatalf("step %d: KeyN %d, want %d", step, lb.KeyN(), rb.KeyN())
			}
			seek := fmt.Appendf(nil, "k%03d", rng.IntN(210))
			rc, lc := rb.Cursor(), lb.Cursor()
			rk, rv := rc.Seek(seek)
			lk, lv := lc.Seek(seek)
			if rng.IntN(2) == 0 {
				rk, rv = rc.First()
				lk, lv = lc.First()
			}
			for {
				if !bytes.Equal(rk, lk) || !bytes.Equal(rv, lv) {
					t.Fatalf("step %d: cursor at %q=%q, want %q=%q", step, lk, lv, rk, rv)
				}
				if rk == nil {
					break
				}
				if g := lb.Get(rk); !bytes.Equal(g, rv) {
					t.Fatalf("step %d: Get(%q) = %q, want %q", step, rk, g, rv)
				}
				rk, rv = rc.Next()
				lk, lv = lc.Next()
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// layeredHarness applies entries through a View over a read transaction,
// as core does, and flushes its layer to bbolt at random points.
type layeredHarness struct {
	db    *bbolt.DB
	layer *Layer
}

func (lh *layeredHarness) apply(t *testing.T, index uint64, data []byte) *Outcome {
	t.Helper()
	var out *Outcome
	err := lh.db.View(func(tx *bbolt.Tx) error {
		var err error
		out, err = Apply(NewView(Bolt(tx), lh.layer), index, 1, data)
		return err
	})
	if err != nil {
		t.Fatalf("layered apply at %d: %v", index, err)
	}
	return out
}

func (lh *layeredHarness) flush(t *testing.T) {
	t.Helper()
	if err := lh.db.Update(lh.layer.FlushTo); err != nil {
		t.Fatal(err)
	}
	lh.layer = NewLayer()
}

func (lh *layeredHarness) digest(t *testing.T) [32]byte {
	t.Helper()
	var d [32]byte
	if err := lh.db.View(func(tx *bbolt.Tx) error {
		var err error
		d, err = Digest(NewView(Bolt(tx), lh.layer))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// randomEntry makes one random command over a small set of paths and
// sessions, so creates, deletes, multis, expiries and reaps collide.
func randomEntry(rng *rand.Rand, sessions []uint64, seq map[uint64]uint64, now int64) any {
	paths := []string{"/a", "/a/b", "/a/b/c", "/q", "/q/x", "/c", "/c/k", "/t"}
	p := paths[rng.IntN(len(paths))]
	if len(sessions) == 0 || rng.IntN(20) == 0 {
		return &command.CreateSession{TimeoutMs: 1000, Password: fmt.Appendf(nil, "pw%d", rng.Uint64())}
	}
	s := sessions[rng.IntN(len(sessions))]
	switch rng.IntN(30) {
	case 0:
		return &command.Expire{Sessions: []uint64{s}}
	case 1:
		return &command.Reap{Items: []command.ReapItem{{Path: "/c", Czxid: int64(rng.IntN(50))}, {Path: "/t", Czxid: int64(rng.IntN(50))}}}
	}
	seq[s]++
	r := &command.Request{Session: s, Seq: seq[s]}
	modes := []grove.CreateMode{grove.ModePersistent, grove.ModeEphemeral, grove.ModePersistentSequential, grove.ModeEphemeralSequential, grove.ModeContainer}
	switch rng.IntN(6) {
	case 0, 1:
		r.Op, r.Path, r.Mode, r.ACL = command.OpCreate, p, modes[rng.IntN(len(modes))], grove.OpenACLUnsafe
		r.Data = fmt.Appendf(nil, "d%d", rng.IntN(100))
		if p == "/t" {
			r.Mode, r.TTL = grove.ModePersistentWithTTL, 10
		}
	case 2:
		r.Op, r.Path, r.Version = command.OpDelete, p, -1
	case 3:
		r.Op, r.Path, r.Data, r.Version = command.OpSetData, p, fmt.Appendf(nil, "s%d", rng.IntN(100)), int32(rng.IntN(3)-1)
	case 4:
		r.Op = command.OpMulti
		r.Ops = []grove.Op{
			grove.CreateOp(p+"/m", nil, grove.ModePersistent, grove.OpenACLUnsafe),
			grove.DeleteOp(paths[rng.IntN(len(paths))], -1),
		}
	case 5:
		r.Op = command.OpCloseSession
	}
	return r
}

// The state machine run over a layered view, flushed at random points,
// ends in exactly the state of the same log applied straight to bbolt, and
// agrees with it after every entry: outcomes, digests and counts.
func TestLayeredApplyMatchesBolt(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	ref := mustHarness(t)
	lh := &layeredHarness{db: mustBolt(t), layer: NewLayer()}
	if err := lh.db.Update(Init); err != nil {
		t.Fatal(err)
	}
	var sessions []uint64
	seq := map[uint64]uint64{}
	for i := range 2000 {
		body := randomEntry(rng, sessions, seq, ref.now)
		data, err := command.Encode(body)
		if err != nil {
			t.Fatal(err)
		}
		command.Stamp(data, ref.now+int64(i))
		want := ref.applyRaw(data)
		got := lh.apply(t, ref.index, data)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("entry %d (%T): outcome %+v, want %+v", ref.index, body, got, want)
		}
		if want.Created != nil {
			sessions = append(sessions, want.Created.ID)
		}
		if rng.IntN(40) == 0 {
			lh.flush(t)
		}
		if i%50 == 0 {
			if lh.digest(t) != ref.digest() {
				t.Fatalf("entry %d: digests differ", ref.index)
			}
		}
	}
	lh.flush(t)
	var ld [32]byte
	if err := lh.db.View(func(tx *bbolt.Tx) error {
		var err error
		if ld, err = Digest(Bolt(tx)); err != nil {
			return err
		}
		return checkInvariants(tx)
	}); err != nil {
		t.Fatal(err)
	}
	if ld != ref.digest() {
		t.Fatal("flushed state differs from the reference")
	}
}
