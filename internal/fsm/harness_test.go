package fsm

import (
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is an initialised store fed entries at increasing indexes.
type harness struct {
	t       testing.TB
	db      *bbolt.DB
	index   uint64 // index of the last applied entry
	now     int64  // time stamped into the next entry
	clients int    // sessions opened, for unique passwords
}

// mustHarness opens a fresh initialised store in t.TempDir().
func mustHarness(t testing.TB) *harness {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "fsm.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Update(Init); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, db: db, now: 1000}
}

// applyRaw applies raw entry bytes at the next index.
func (h *harness) applyRaw(data []byte) *Outcome {
	h.t.Helper()
	h.index++
	var out *Outcome
	err := h.db.Update(func(tx *bbolt.Tx) error {
		var err error
		out, err = Apply(Bolt(tx), h.index, 1, data)
		return err
	})
	if err != nil {
		h.t.Fatalf("apply at %d: %v", h.index, err)
	}
	return out
}

// apply encodes body, stamps h.now and applies it at the next index.
func (h *harness) apply(body any) *Outcome {
	h.t.Helper()
	data, err := command.Encode(body)
	if err != nil {
		h.t.Fatal(err)
	}
	command.Stamp(data, h.now)
	return h.applyRaw(data)
}

// view runs fn in a read transaction, failing the test on error.
func (h *harness) view(fn func(tx *bbolt.Tx) error) {
	h.t.Helper()
	if err := h.db.View(fn); err != nil {
		h.t.Fatal(err)
	}
}

// stat returns the Stat of path, failing the test if it is missing.
func (h *harness) stat(path string) grove.Stat {
	h.t.Helper()
	var st grove.Stat
	h.view(func(tx *bbolt.Tx) error {
		var err error
		st, err = Exists(Bolt(tx), path)
		return err
	})
	return st
}

// exists reports whether path exists.
func (h *harness) exists(path string) bool {
	h.t.Helper()
	ok := false
	_ = h.db.View(func(tx *bbolt.Tx) error {
		_, err := Exists(Bolt(tx), path)
		ok = err == nil
		return nil
	})
	return ok
}

// digest returns the store's digest.
func (h *harness) digest() [32]byte {
	h.t.Helper()
	var d [32]byte
	h.view(func(tx *bbolt.Tx) error {
		var err error
		d, err = Digest(Bolt(tx))
		return err
	})
	return d
}

// client is a session of the harness with its own sequence numbers.
type client struct {
	h   *harness
	id  uint64
	seq uint64
	ids []grove.Identity
}

// newClient opens a session.
func (h *harness) newClient(ids ...grove.Identity) *client {
	h.t.Helper()
	h.clients++
	out := h.apply(&command.CreateSession{TimeoutMs: 10000, Password: []byte(fmt.Sprintf("pw-%d", h.clients))})
	if out.Created == nil || out.Session != h.index {
		h.t.Fatalf("create session: %+v", out)
	}
	return &client{h: h, id: out.Session, ids: ids}
}

// do sends req as the client's next request.
func (c *client) do(req *command.Request) *Outcome {
	c.h.t.Helper()
	c.seq++
	req.Session, req.Seq = c.id, c.seq
	if req.Identities == nil {
		req.Identities = c.ids
	}
	out := c.h.apply(req)
	if out.Result == nil || out.Session != c.id || out.Seq != c.seq {
		c.h.t.Fatalf("request %+v: outcome %+v", req, out)
	}
	return out
}

func (c *client) create(path string, data string, mode grove.CreateMode, acl []grove.ACL) *command.Result {
	c.h.t.Helper()
	return c.do(&command.Request{Op: command.OpCreate, Path: path, Data: []byte(data), Mode: mode, ACL: acl}).Result
}

func (c *client) createTTL(path string, mode grove.CreateMode, ttl int64) *command.Result {
	c.h.t.Helper()
	return c.do(&command.Request{Op: command.OpCreate, Path: path, Mode: mode, ACL: grove.OpenACLUnsafe, TTL: ttl}).Result
}

func (c *client) del(path string, version int32) *command.Result {
	c.h.t.Helper()
	return c.do(&command.Request{Op: command.OpDelete, Path: path, Version: version}).Result
}

func (c *client) set(path, data string, version int32) *command.Result {
	c.h.t.Helper()
	return c.do(&command.Request{Op: command.OpSetData, Path: path, Data: []byte(data), Version: version}).Result
}

func (c *client) setACL(path string, acl []grove.ACL, version int32) *command.Result {
	c.h.t.Helper()
	return c.do(&command.Request{Op: command.OpSetACL, Path: path, ACL: acl, Version: version}).Result
}

func (c *client) check(path string, version int32) *command.Result {
	c.h.t.Helper()
	return c.do(&command.Request{Op: command.OpCheck, Path: path, Version: version}).Result
}

func (c *client) multi(ops ...grove.Op) *Outcome {
	c.h.t.Helper()
	return c.do(&command.Request{Op: command.OpMulti, Ops: ops})
}

// mustOK creates path as a persistent open node, failing on any error.
func (c *client) mustCreate(path string, mode grove.CreateMode) string {
	c.h.t.Helper()
	r := c.create(path, "", mode, grove.OpenACLUnsafe)
	if r.Code != grove.CodeOK {
		c.h.t.Fatalf("create %s: %v", path, r.Code)
	}
	return r.Path
}

// wantCode fails the test unless got is want.
func wantCode(t testing.TB, what string, got, want grove.Code) {
	t.Helper()
	if got != want {
		t.Errorf("%s: code %d (%v), want %d (%v)", what, got, grove.CodeError(got), want, grove.CodeError(want))
	}
}

// seedNode overwrites the record of path with n (for tests that need a
// state no sequence of requests reaches quickly).
func (h *harness) seedNode(path string, n *node) {
	h.t.Helper()
	err := h.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketNodes).Put([]byte(path), n.encode())
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// readNodeRecord returns the decoded record of path.
func (h *harness) readNodeRecord(path string) *node {
	h.t.Helper()
	var n *node
	h.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = decodeNode(tx.Bucket(bucketNodes).Get([]byte(path)))
		if err == nil {
			n.data = append([]byte(nil), n.data...)
		}
		return err
	})
	return n
}

// tree returns every node of the store rendered as text, by path.
func (h *harness) tree() map[string]string {
	h.t.Helper()
	out := map[string]string{}
	h.view(func(tx *bbolt.Tx) error {
		return Walk(Bolt(tx), func(path string, data []byte, stat grove.Stat, acl []grove.ACL) error {
			out[path] = fmt.Sprintf("%q %+v %v", data, stat, acl)
			return nil
		})
	})
	return out
}

// forgetLast undoes the bookkeeping of the client's last request: its cached
// result and the session's LastSeq. What remains is the request's effect on
// the tree.
func (c *client) forgetLast() {
	c.h.t.Helper()
	err := c.h.db.Update(func(tx *bbolt.Tx) error {
		st, err := openStore(Bolt(tx))
		if err != nil {
			return err
		}
		if err := st.results.Delete(resultKey(c.id, c.seq)); err != nil {
			return err
		}
		s, _, err := st.session(c.id)
		if err != nil {
			return err
		}
		s.LastSeq = c.seq - 1
		return st.putSession(&s)
	})
	if err != nil {
		c.h.t.Fatal(err)
	}
	c.seq--
}
