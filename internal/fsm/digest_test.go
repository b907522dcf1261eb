package fsm

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// feed applies a fixed workload touching every kind of state.
func feed(h *harness) {
	h.t.Helper()
	bob := grove.Identity{Scheme: "digest", ID: grove.DigestID("bob", "pw")}
	a, b := h.newClient(bob), h.newClient()
	a.mustCreate("/app", grove.ModePersistent)
	a.mustCreate("/app/e-", grove.ModeEphemeralSequential)
	b.mustCreate("/app/e-", grove.ModeEphemeralSequential)
	a.create("/app/cfg", "v1", grove.ModePersistent, grove.CreatorAllACL)
	a.set("/app/cfg", "v2", 0)
	a.createTTL("/ttl", grove.ModePersistentWithTTL, 60_000)
	a.mustCreate("/box", grove.ModeContainer)
	a.multi(grove.CreateOp("/box/x", []byte("x"), grove.ModePersistent, grove.OpenACLUnsafe), grove.CheckOp("/app", 0))
	a.multi(grove.DeleteOp("/box/x", -1), grove.CheckOp("/app", 9)) // fails
	b.setACL("/app", grove.ReadACLUnsafe, -1)
	b.del("/app/cfg", -1) // NoAuth
	h.apply(&command.Expire{Sessions: []uint64{b.id}})
}

func TestDigestDeterministic(t *testing.T) {
	h1, h2 := mustHarness(t), mustHarness(t)
	feed(h1)
	feed(h2)
	d1 := h1.digest()
	if d1 != h2.digest() {
		t.Fatal("same log, different digests")
	}
	if !reflect.DeepEqual(h1.tree(), h2.tree()) {
		t.Fatal("same log, different trees")
	}
	// The applied index is not state.
	if err := h2.db.Update(func(tx *bbolt.Tx) error { return SetApplied(Bolt(tx), 999, 9) }); err != nil {
		t.Fatal(err)
	}
	if h2.digest() != d1 {
		t.Error("SetApplied changed the digest")
	}
	// Any difference shows: data, a session's seq, a cached result.
	c := h2.newClient()
	if h2.digest() == d1 {
		t.Error("new session not in digest")
	}
	d2 := h2.digest()
	c.check("/app", -1)
	if h2.digest() == d2 {
		t.Error("request bookkeeping not in digest")
	}
	d3 := h2.digest()
	n := h2.readNodeRecord("/ttl")
	n.cversion += 1 << 32 // invisible in Stat.Cversion
	h2.seedNode("/ttl", n)
	if h2.digest() == d3 {
		t.Error("64-bit counter not in digest")
	}
}

func TestCopyStateRoundTrip(t *testing.T) {
	src := mustHarness(t)
	feed(src)
	if err := src.db.Update(func(tx *bbolt.Tx) error { return SetApplied(Bolt(tx), 4242, 7) }); err != nil {
		t.Fatal(err)
	}
	dst := mustHarness(t)
	dst.newClient().mustCreate("/stale", grove.ModeEphemeral)
	err := dst.db.Update(func(dtx *bbolt.Tx) error {
		// A foreign bucket of the same file survives.
		if _, err := dtx.CreateBucket([]byte("raft.log")); err != nil {
			return err
		}
		return src.db.View(func(stx *bbolt.Tx) error { return CopyState(dtx, stx) })
	})
	if err != nil {
		t.Fatal(err)
	}
	if dst.digest() != src.digest() || !reflect.DeepEqual(dst.tree(), src.tree()) {
		t.Fatal("copy differs")
	}
	dst.view(func(tx *bbolt.Tx) error {
		i, term, err := Applied(Bolt(tx))
		if err != nil || i != 4242 || term != 7 {
			t.Errorf("applied %d %d %v", i, term, err)
		}
		if tx.Bucket([]byte("raft.log")) == nil {
			t.Error("foreign bucket dropped")
		}
		s1, _ := Sessions(Bolt(tx))
		var s2 []Session
		src.view(func(stx *bbolt.Tx) error {
			s2, err = Sessions(Bolt(stx))
			return err
		})
		if !reflect.DeepEqual(s1, s2) {
			t.Errorf("sessions %v vs %v", s1, s2)
		}
		return nil
	})
	// The copy keeps working: both apply the same next entry alike.
	src.index, dst.index, dst.now = 4242, 4242, src.now
	src.apply(&command.CreateSession{TimeoutMs: 1, Password: []byte("a")})
	dst.apply(&command.CreateSession{TimeoutMs: 1, Password: []byte("a")})
	if dst.digest() != src.digest() {
		t.Error("diverged after the copy")
	}
}

func TestCopyStateRejectsForeignFile(t *testing.T) {
	dst := mustHarness(t)
	feed(dst)
	before := dst.digest()

	foreign, err := bbolt.Open(filepath.Join(t.TempDir(), "foreign.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = foreign.Close() })
	copyFrom := func() error {
		return dst.db.Update(func(dtx *bbolt.Tx) error {
			return foreign.View(func(stx *bbolt.Tx) error { return CopyState(dtx, stx) })
		})
	}
	// No buckets at all, then only some of them, then all but no root.
	if err := copyFrom(); !errors.Is(err, grove.ErrCorrupt) {
		t.Errorf("empty file: %v", err)
	}
	mustUpdate := func(fn func(tx *bbolt.Tx) error) {
		t.Helper()
		if err := foreign.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	mustUpdate(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket(bucketNodes)
		return err
	})
	if err := copyFrom(); !errors.Is(err, grove.ErrCorrupt) {
		t.Errorf("partial: %v", err)
	}
	mustUpdate(func(tx *bbolt.Tx) error {
		if err := Init(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketNodes).Delete([]byte("/"))
	})
	if err := copyFrom(); !errors.Is(err, grove.ErrCorrupt) {
		t.Errorf("no root: %v", err)
	}
	mustUpdate(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketNodes).Put([]byte("/"), []byte("junk"))
	})
	if err := copyFrom(); !errors.Is(err, grove.ErrCorrupt) {
		t.Errorf("bad root: %v", err)
	}
	mustUpdate(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketNodes).Put([]byte("/"), (&node{}).encode()); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyApplied, []byte{1, 2, 3})
	})
	if err := copyFrom(); !errors.Is(err, grove.ErrCorrupt) {
		t.Errorf("bad applied: %v", err)
	}
	mustUpdate(func(tx *bbolt.Tx) error {
		if err := SetApplied(Bolt(tx), 1, 1); err != nil {
			return err
		}
		_, err := tx.Bucket(bucketSessions).CreateBucket([]byte("nested"))
		return err
	})
	if err := copyFrom(); !errors.Is(err, grove.ErrCorrupt) {
		t.Errorf("nested bucket: %v", err)
	}
	if dst.digest() != before {
		t.Error("failed CopyState changed the destination")
	}
	// Reads and Apply on a store without buckets report corruption too.
	err = foreign.View(func(tx *bbolt.Tx) error {
		_, err := Digest(Bolt(tx))
		return err
	})
	if err != nil {
		t.Errorf("digest of initialised foreign store: %v", err)
	}
	empty, err := bbolt.Open(filepath.Join(t.TempDir(), "empty.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = empty.Close() })
	_ = empty.Update(func(tx *bbolt.Tx) error {
		if _, err := Apply(Bolt(tx), 1, 1, nil); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("apply: %v", err)
		}
		if _, err := Digest(Bolt(tx)); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("digest: %v", err)
		}
		if _, _, err := Get(Bolt(tx), "/", nil); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("get: %v", err)
		}
		if _, err := Sessions(Bolt(tx)); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("sessions: %v", err)
		}
		if i, term, err := Applied(Bolt(tx)); i != 0 || term != 0 || err != nil {
			t.Errorf("applied: %d %d %v", i, term, err)
		}
		return nil
	})
}
