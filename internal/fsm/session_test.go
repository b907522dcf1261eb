package fsm

import (
	"reflect"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

func TestCreateSession(t *testing.T) {
	h := mustHarness(t)
	out := h.apply(&command.CreateSession{TimeoutMs: 4000, Password: []byte{9, 8}})
	want := Session{ID: h.index, TimeoutMs: 4000, Password: []byte{9, 8}}
	if out.Kind != command.KindCreateSession || out.Session != h.index || !reflect.DeepEqual(*out.Created, want) {
		t.Fatalf("outcome %+v", out)
	}
	h.view(func(tx *bbolt.Tx) error {
		s, ok, err := SessionByID(Bolt(tx), h.index)
		if err != nil || !ok || !reflect.DeepEqual(s, want) {
			t.Errorf("SessionByID %+v %v %v", s, ok, err)
		}
		if _, ok, _ := SessionByID(Bolt(tx), 999); ok {
			t.Error("phantom session")
		}
		all, err := Sessions(Bolt(tx))
		if err != nil || !reflect.DeepEqual(all, []Session{want}) {
			t.Errorf("Sessions %+v %v", all, err)
		}
		return nil
	})
}

func TestSequenceRules(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	first := c.create("/a", "1", grove.ModePersistentSequential, grove.OpenACLUnsafe)
	if first.Code != 0 {
		t.Fatal(first.Code)
	}
	c.mustCreate("/b", grove.ModePersistent)

	// A retry of seq 1 gets the original result and changes nothing.
	before := h.digest()
	out := h.apply(&command.Request{Session: c.id, Seq: 1, Op: command.OpCreate, Path: "/a", Mode: grove.ModePersistentSequential, ACL: grove.OpenACLUnsafe})
	if !out.Duplicate || !reflect.DeepEqual(out.Result, first) || len(out.Events) != 0 || out.Seq != 1 || out.Session != c.id {
		t.Fatalf("duplicate: %+v, want %+v", out, first)
	}
	if h.digest() != before {
		t.Error("duplicate changed the state")
	}
	// Seq 0 was never cached (stale); a gap is out of order; neither
	// changes state.
	for _, seq := range []uint64{0, 4, 100} {
		want := grove.CodeOutOfOrder
		if seq == 0 {
			want = grove.CodeStaleRequest
		}
		out := h.apply(&command.Request{Session: c.id, Seq: seq, Op: command.OpCreate, Path: "/z", ACL: grove.OpenACLUnsafe})
		if out.Duplicate || out.Result.Code != want || out.Seq != seq {
			t.Errorf("seq %d: %+v", seq, out)
		}
	}
	if h.digest() != before || h.exists("/z") {
		t.Error("out-of-order request changed the state")
	}
	// The next seq still works.
	if r := c.create("/z", "", grove.ModePersistent, grove.OpenACLUnsafe); r.Code != 0 {
		t.Fatal(r.Code)
	}
	// Failed requests are cached too.
	failed := c.create("/z", "", grove.ModePersistent, grove.OpenACLUnsafe)
	out = h.apply(&command.Request{Session: c.id, Seq: c.seq, Op: command.OpCreate, Path: "/other"})
	if !out.Duplicate || out.Result.Code != grove.CodeNodeExists || !reflect.DeepEqual(out.Result, failed) {
		t.Errorf("cached failure %+v", out)
	}
}

func TestResultWindowEviction(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/n", grove.ModePersistent)
	for range ResultWindow + 1 {
		if r := c.check("/n", -1); r.Code != 0 {
			t.Fatal(r.Code)
		}
	}
	last := c.seq // ResultWindow + 2
	count := 0
	h.view(func(tx *bbolt.Tx) error {
		count = tx.Bucket(bucketResults).Stats().KeyN
		return nil
	})
	if count != ResultWindow {
		t.Errorf("%d cached results, want %d", count, ResultWindow)
	}
	probe := func(seq uint64) *Outcome {
		return h.apply(&command.Request{Session: c.id, Seq: seq, Op: command.OpCheck, Path: "/n", Version: -1})
	}
	for _, seq := range []uint64{1, 2} {
		if out := probe(seq); out.Duplicate || out.Result.Code != grove.CodeStaleRequest {
			t.Errorf("evicted seq %d: %+v", seq, out)
		}
	}
	for _, seq := range []uint64{3, last} {
		if out := probe(seq); !out.Duplicate || out.Result.Code != 0 {
			t.Errorf("kept seq %d: %+v", seq, out)
		}
	}
}

func TestUnknownSession(t *testing.T) {
	h := mustHarness(t)
	before := h.digest()
	out := h.apply(&command.Request{Session: 77, Seq: 1, Op: command.OpCreate, Path: "/a", ACL: grove.OpenACLUnsafe})
	if out.Kind != command.KindRequest || out.Session != 77 || out.Seq != 1 || out.Result.Code != grove.CodeSessionExpired || out.Duplicate {
		t.Fatalf("%+v", out)
	}
	if h.digest() != before {
		t.Error("state changed")
	}
}

func TestMalformedEntry(t *testing.T) {
	h := mustHarness(t)
	before := h.digest()
	for _, data := range [][]byte{nil, {1}, {99, 1, 0, 0, 0, 0, 0, 0, 0, 0}, {command.Version, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xc1}} {
		out := h.applyRaw(data)
		if !reflect.DeepEqual(out, &Outcome{}) {
			t.Errorf("%x: %+v", data, out)
		}
		h.view(func(tx *bbolt.Tx) error {
			i, term, err := Applied(Bolt(tx))
			if err != nil || i != h.index || term != 1 {
				t.Errorf("applied %d %d %v, want %d", i, term, err, h.index)
			}
			return nil
		})
	}
	if h.digest() != before {
		t.Error("state changed")
	}
}

func TestCloseSession(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	other := h.newClient()
	c.mustCreate("/p", grove.ModePersistent)
	c.mustCreate("/p/e2", grove.ModeEphemeral)
	c.mustCreate("/p/e1", grove.ModeEphemeral)
	c.mustCreate("/e0", grove.ModeEphemeral)
	other.mustCreate("/mine", grove.ModeEphemeral)
	pBefore := h.stat("/p")
	out := c.do(&command.Request{Op: command.OpCloseSession})
	z := int64(h.index)
	if out.Result.Code != 0 || !reflect.DeepEqual(out.Closed, []uint64{c.id}) {
		t.Fatalf("%+v", out)
	}
	wantEv := []grove.Event{
		{Type: grove.EventNodeDeleted, Path: "/e0", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/", Zxid: z},
		{Type: grove.EventNodeDeleted, Path: "/p/e1", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/p", Zxid: z},
		{Type: grove.EventNodeDeleted, Path: "/p/e2", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/p", Zxid: z},
	}
	if !reflect.DeepEqual(out.Events, wantEv) {
		t.Errorf("events %+v", out.Events)
	}
	want := pBefore
	want.NumChildren, want.Cversion, want.Pzxid = 0, pBefore.Cversion+2, z
	if got := h.stat("/p"); got != want {
		t.Errorf("/p %+v, want %+v", got, want)
	}
	if !h.exists("/mine") || h.exists("/e0") || !h.exists("/p") {
		t.Error("wrong nodes deleted")
	}
	h.view(func(tx *bbolt.Tx) error {
		if _, ok, _ := SessionByID(Bolt(tx), c.id); ok {
			t.Error("session survived")
		}
		if eph, _ := Ephemerals(Bolt(tx), c.id, "/"); len(eph) != 0 {
			t.Errorf("ephemerals %v", eph)
		}
		k, _ := tx.Bucket(bucketResults).Cursor().Seek(u64(c.id))
		if k != nil && hasPrefix(k, u64(c.id)) {
			t.Error("cached results survived")
		}
		return nil
	})
	// The session is gone: a retry of the close, or anything else, expires.
	r := h.apply(&command.Request{Session: c.id, Seq: c.seq, Op: command.OpCloseSession}).Result
	wantCode(t, "retried close", r.Code, grove.CodeSessionExpired)
}

func TestExpire(t *testing.T) {
	h := mustHarness(t)
	a, b, keep := h.newClient(), h.newClient(), h.newClient()
	a.mustCreate("/a", grove.ModeEphemeral)
	b.mustCreate("/b", grove.ModeEphemeralSequential)
	keep.mustCreate("/k", grove.ModeEphemeral)
	out := h.apply(&command.Expire{Sessions: []uint64{b.id, 12345, a.id, b.id}})
	z := int64(h.index)
	if out.Kind != command.KindExpire || !reflect.DeepEqual(out.Closed, []uint64{b.id, a.id}) {
		t.Fatalf("%+v", out)
	}
	wantEv := []grove.Event{
		{Type: grove.EventNodeDeleted, Path: "/b0000000001", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/", Zxid: z},
		{Type: grove.EventNodeDeleted, Path: "/a", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/", Zxid: z},
	}
	if !reflect.DeepEqual(out.Events, wantEv) {
		t.Errorf("events %+v", out.Events)
	}
	if h.exists("/a") || h.exists("/b0000000001") || !h.exists("/k") {
		t.Error("wrong nodes")
	}
	if got := h.stat("/"); got.NumChildren != 2 || got.Pzxid != z {
		t.Errorf("root %+v", got)
	}
	h.view(func(tx *bbolt.Tx) error {
		all, err := Sessions(Bolt(tx))
		if err != nil || len(all) != 1 || all[0].ID != keep.id || all[0].LastSeq != 1 {
			t.Errorf("sessions %+v %v", all, err)
		}
		return nil
	})
	// Expiring again is a no-op.
	before := h.digest()
	if out := h.apply(&command.Expire{Sessions: []uint64{a.id}}); len(out.Closed) != 0 || len(out.Events) != 0 {
		t.Errorf("%+v", out)
	}
	if h.digest() != before {
		t.Error("state changed")
	}
	wantCode(t, "expired session", a.create("/x", "", grove.ModePersistent, grove.OpenACLUnsafe).Code, grove.CodeSessionExpired)
}

func TestRetriedCreateSessionFindsTheFirst(t *testing.T) {
	h := mustHarness(t)
	first := h.apply(&command.CreateSession{TimeoutMs: 4000, Password: []byte("token")})
	again := h.apply(&command.CreateSession{TimeoutMs: 4000, Password: []byte("token")})
	if first.Created == nil || again.Created == nil || again.Created.ID != first.Created.ID || again.Session != first.Session {
		t.Fatalf("retry opened another session: %+v then %+v", first.Created, again.Created)
	}
	var n int
	h.view(func(tx *bbolt.Tx) error {
		list, err := Sessions(Bolt(tx))
		n = len(list)
		return err
	})
	if n != 1 {
		t.Fatalf("%d sessions after a retried create", n)
	}
	// Once closed, the token is free again.
	c := &client{h: h, id: first.Session}
	if out := c.do(&command.Request{Op: command.OpCloseSession}); out.Result.Code != 0 {
		t.Fatalf("close: %+v", out.Result)
	}
	third := h.apply(&command.CreateSession{TimeoutMs: 4000, Password: []byte("token")})
	if third.Created == nil || third.Session == first.Session {
		t.Fatalf("create after close: %+v", third)
	}
}
