package fsm

import (
	"errors"
	"reflect"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

func TestNodeRecordRoundTrip(t *testing.T) {
	n := &node{
		czxid: 1, mzxid: -2, pzxid: 1 << 62, ctime: 4, mtime: 5,
		version: -1, aversion: 7, cversion: 1<<64 - 1, owner: grove.EphemeralOwnerContainer,
		numChildren: 9, mode: grove.ModePersistentSequentialWithTTL, ttl: grove.MaxTTL,
		acl: []grove.ACL{
			{Perms: grove.PermAll, Scheme: "world", ID: "anyone"},
			{Perms: grove.PermRead, Scheme: "x509", ID: string(make([]byte, 300))},
		},
		data: []byte("payload"),
	}
	got, err := decodeNode(n.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, n) {
		t.Fatalf("round trip\n%+v\n%+v", got, n)
	}
	empty, err := decodeNode((&node{}).encode())
	if err != nil || len(empty.acl) != 0 || len(empty.data) != 0 {
		t.Fatalf("empty: %+v %v", empty, err)
	}
}

func TestNodeRecordCorrupt(t *testing.T) {
	good := (&node{acl: grove.OpenACLUnsafe, data: []byte("d")}).encode()
	badFormat := append([]byte{9}, good[1:]...)
	cases := map[string][]byte{
		"nil":          nil,
		"short":        good[:nodeHeaderSize-1],
		"bad format":   badFormat,
		"no acl count": good[:nodeHeaderSize],
		"huge count":   append(append([]byte{}, good[:nodeHeaderSize]...), 0xff, 0xff, 0x03),
		"cut perms":    good[:nodeHeaderSize+3],
		"cut scheme":   good[:nodeHeaderSize+1+4+3],
		"cut id":       good[:nodeHeaderSize+1+4+6+3],
	}
	for name, b := range cases {
		if _, err := decodeNode(b); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := decodeSession(1, []byte{sessionFormat, 0}); !errors.Is(err, grove.ErrCorrupt) {
		t.Errorf("session: %v", err)
	}
}

// TestCorruptStoreIsFatal checks that a record that does not decode makes
// Apply and the reads fail with ErrCorrupt instead of answering.
func TestCorruptStoreIsFatal(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/a", grove.ModeContainer)
	corrupt := func(bucket []byte, key []byte) {
		t.Helper()
		err := h.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(key, []byte{1, 2}) })
		if err != nil {
			t.Fatal(err)
		}
	}
	corrupt(bucketNodes, []byte("/a"))
	for _, body := range []any{
		&command.Request{Session: c.id, Seq: 2, Op: command.OpSetData, Path: "/a", Version: -1},
		&command.Reap{Items: []command.ReapItem{{Path: "/a"}}},
	} {
		data, _ := command.Encode(body)
		err := h.db.Update(func(tx *bbolt.Tx) error {
			_, err := Apply(Bolt(tx), 100, 1, data)
			return err
		})
		if !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("apply %T: %v", body, err)
		}
	}
	_ = h.db.View(func(tx *bbolt.Tx) error {
		if _, _, err := Get(Bolt(tx), "/a", nil); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("get: %v", err)
		}
		if _, err := ReapCandidates(Bolt(tx), 0, 0); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("reap candidates: %v", err)
		}
		if err := Walk(Bolt(tx), func(string, []byte, grove.Stat, []grove.ACL) error { return nil }); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("walk: %v", err)
		}
		return nil
	})
	corrupt(bucketSessions, u64(c.id))
	data, _ := command.Encode(&command.Request{Session: c.id, Seq: 2, Op: command.OpCheck, Path: "/"})
	err := h.db.Update(func(tx *bbolt.Tx) error {
		_, err := Apply(Bolt(tx), 100, 1, data)
		return err
	})
	if !errors.Is(err, grove.ErrCorrupt) {
		t.Errorf("apply with corrupt session: %v", err)
	}
	_ = h.db.View(func(tx *bbolt.Tx) error {
		if _, err := Sessions(Bolt(tx)); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("sessions: %v", err)
		}
		if _, _, err := SessionByID(Bolt(tx), c.id); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("session: %v", err)
		}
		return nil
	})
}

func TestCounts(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	h.newClient()
	c.mustCreate("/a", grove.ModePersistent)
	h.view(func(tx *bbolt.Tx) error {
		s, n, err := Counts(Bolt(tx))
		if err != nil || s != 2 || n != 5 { // the initial four, /a
			t.Errorf("counts %d %d %v", s, n, err)
		}
		return nil
	})
}
