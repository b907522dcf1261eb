package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// checkInvariants verifies that the indexes agree with the node records:
// every node but the root has its parent and a children entry, NumChildren
// counts the children entries, and the ephemeral and reap indexes hold
// exactly the session-owned and the container/TTL nodes.
func checkInvariants(tx *bbolt.Tx) error {
	st, err := openStore(tx)
	if err != nil {
		return err
	}
	nodes := map[string]*node{}
	err = st.nodes.ForEach(func(k, v []byte) error {
		n, err := decodeNode(v)
		if err != nil {
			return err
		}
		nodes[string(k)] = n
		return nil
	})
	if err != nil {
		return err
	}
	kids := map[string]int32{}
	err = st.children.ForEach(func(k, _ []byte) error {
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			return fmt.Errorf("children key %q without NUL", k)
		}
		parent, name := string(k[:i]), string(k[i+1:])
		if nodes[grove.Join(parent, name)] == nil {
			return fmt.Errorf("children entry %q names no node", k)
		}
		kids[parent]++
		return nil
	})
	if err != nil {
		return err
	}
	wantEph, wantReap := map[string]bool{}, map[string]bool{}
	for path, n := range nodes {
		if path != "/" && nodes[grove.Parent(path)] == nil {
			return fmt.Errorf("%s has no parent", path)
		}
		if n.numChildren != kids[path] {
			return fmt.Errorf("%s: numChildren %d, index %d", path, n.numChildren, kids[path])
		}
		if n.isEphemeral() {
			wantEph[string(ephemeralKey(uint64(n.owner), path))] = true
		}
		if n.reapable() {
			wantReap[path] = true
		}
	}
	for name, want := range map[string]map[string]bool{"ephemerals": wantEph, "reap": wantReap} {
		got := map[string]bool{}
		_ = tx.Bucket([]byte("fsm."+name)).ForEach(func(k, _ []byte) error {
			got[string(k)] = true
			return nil
		})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("%s index %v, want %v", name, got, want)
		}
	}
	return nil
}

func TestInvariantsAfterWorkload(t *testing.T) {
	h := mustHarness(t)
	feed(h)
	h.view(checkInvariants)
}

// errRollback makes a fuzz transaction roll back.
var errRollback = errors.New("rollback")

func FuzzApply(f *testing.F) {
	db, err := bbolt.Open(filepath.Join(f.TempDir(), "fuzz.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	// Base state: session 1 with seq 1 applied, a few nodes of each kind.
	base := []any{
		&command.CreateSession{TimeoutMs: 1000, Password: []byte("x")},
		&command.Request{Session: 1, Seq: 1, Op: command.OpMulti, Ops: []grove.Op{
			grove.CreateOp("/a", []byte("a"), grove.ModePersistent, grove.OpenACLUnsafe),
			grove.CreateOp("/a/e", nil, grove.ModeEphemeral, grove.OpenACLUnsafe),
			grove.CreateOp("/c", nil, grove.ModeContainer, grove.OpenACLUnsafe),
			grove.CreateTTLOp("/t", nil, grove.ModePersistentWithTTL, grove.OpenACLUnsafe, 10),
			grove.CreateOp("/d", nil, grove.ModePersistent, grove.DigestACL(grove.PermRead, "u", "p")),
		}},
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if err := Init(tx); err != nil {
			return err
		}
		for i, b := range base {
			data, err := command.Encode(b)
			if err != nil {
				return err
			}
			if _, err := Apply(tx, uint64(i+1), 1, data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	seeds := []any{
		&command.Request{Session: 1, Seq: 2, Op: command.OpCreate, Path: "/a/", Mode: grove.ModePersistentSequential, ACL: grove.CreatorAllACL, Identities: []grove.Identity{{Scheme: "digest", ID: "u:h"}}},
		&command.Request{Session: 1, Seq: 2, Op: command.OpDelete, Path: "/a/e", Version: -1},
		&command.Request{Session: 1, Seq: 2, Op: command.OpSetData, Path: "/d", Data: []byte("z"), Version: 0},
		&command.Request{Session: 1, Seq: 2, Op: command.OpSetACL, Path: "/a", ACL: []grove.ACL{{Perms: 1, Scheme: "ip", ID: "10.0.0.0/8"}}, Version: -1},
		&command.Request{Session: 1, Seq: 2, Op: command.OpCheck, Path: "/a", Version: 0},
		&command.Request{Session: 1, Seq: 2, Op: command.OpCloseSession},
		&command.Request{Session: 1, Seq: 1, Op: command.OpCheck, Path: "/a"},
		&command.Request{Session: 1, Seq: 2, Op: command.OpMulti, Ops: []grove.Op{grove.DeleteOp("/a/e", -1), grove.DeleteOp("/a", -1), grove.CheckOp("/x", 1), {Type: 77}}},
		&command.CreateSession{TimeoutMs: 5},
		&command.Expire{Sessions: []uint64{1, 2, 1}},
		&command.Reap{Items: []command.ReapItem{{Path: "/c", Czxid: 2}, {Path: "/t", Czxid: 2}, {Path: "/"}}},
	}
	for _, s := range seeds {
		data, err := command.Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		command.Stamp(data, 100)
		f.Add(data)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		err := db.Update(func(tx *bbolt.Tx) error {
			for i := range uint64(2) { // twice: the second is a duplicate or a retry
				out, err := Apply(tx, 100+i, 2, data)
				if err != nil {
					return err
				}
				if out == nil {
					return errors.New("nil outcome")
				}
			}
			if err := checkInvariants(tx); err != nil {
				return err
			}
			if _, err := Digest(tx); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("apply %x: %v", data, err)
		}
	})
}
