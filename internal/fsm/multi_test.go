package fsm

import (
	"reflect"
	"testing"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

func TestMultiSuccess(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/old", grove.ModePersistent)
	h.now = 5000
	out := c.multi(
		grove.CreateOp("/m", []byte("x"), grove.ModePersistent, grove.OpenACLUnsafe),
		grove.CreateOp("/m/c", nil, grove.ModePersistent, grove.OpenACLUnsafe), // sees /m
		grove.SetOp("/m/c", []byte("yy"), 0),                                   // sees /m/c
		grove.CheckOp("/m/c", 1),                                               // sees the set
		grove.CreateOp("/m/s-", nil, grove.ModePersistentSequential, grove.OpenACLUnsafe),
		grove.CreateOp("/m/s-", nil, grove.ModePersistentSequential, grove.OpenACLUnsafe),
		grove.DeleteOp("/old", 0),
	)
	r := out.Result
	if r.Code != 0 || len(r.Multi) != 7 {
		t.Fatalf("result %+v", r)
	}
	z := int64(h.index)
	mStat := grove.Stat{Czxid: z, Mzxid: z, Pzxid: z, Ctime: 5000, Mtime: 5000, DataLength: 1}
	cStat := grove.Stat{Czxid: z, Mzxid: z, Pzxid: z, Ctime: 5000, Mtime: 5000}
	cSet := cStat
	cSet.Version, cSet.DataLength = 1, 2
	s1 := cStat
	want := []command.OpResult{
		{Type: grove.OpCreate, Path: "/m", Stat: &mStat},
		{Type: grove.OpCreate, Path: "/m/c", Stat: &cStat},
		{Type: grove.OpSet, Stat: &cSet},
		{Type: grove.OpCheck},
		{Type: grove.OpCreate, Path: "/m/s-0000000001", Stat: &s1},
		{Type: grove.OpCreate, Path: "/m/s-0000000002", Stat: &s1},
		{Type: grove.OpDelete},
	}
	if !reflect.DeepEqual(r.Multi, want) {
		for i := range want {
			t.Errorf("op %d: %+v (stat %+v), want %+v", i, r.Multi[i], r.Multi[i].Stat, want[i])
		}
	}
	// The parent /m was created with numChildren 0 in its result, and ends
	// with three children and all changes at the same zxid.
	if got := h.stat("/m"); got.NumChildren != 3 || got.Cversion != 3 || got.Pzxid != z || got.Mzxid != z {
		t.Errorf("/m %+v", got)
	}
	wantEv := []grove.Event{
		{Type: grove.EventNodeCreated, Path: "/m", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/", Zxid: z},
		{Type: grove.EventNodeCreated, Path: "/m/c", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/m", Zxid: z},
		{Type: grove.EventNodeDataChanged, Path: "/m/c", Zxid: z},
		{Type: grove.EventNodeCreated, Path: "/m/s-0000000001", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/m", Zxid: z},
		{Type: grove.EventNodeCreated, Path: "/m/s-0000000002", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/m", Zxid: z},
		{Type: grove.EventNodeDeleted, Path: "/old", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/", Zxid: z},
	}
	if !reflect.DeepEqual(out.Events, wantEv) {
		t.Errorf("events\n%+v\nwant\n%+v", out.Events, wantEv)
	}
	if h.exists("/old") {
		t.Error("/old survived")
	}
}

func TestMultiEmpty(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	before := h.tree()
	out := c.multi()
	if out.Result.Code != 0 || len(out.Result.Multi) != 0 || len(out.Events) != 0 {
		t.Fatalf("%+v", out)
	}
	if !reflect.DeepEqual(h.tree(), before) {
		t.Error("tree changed")
	}
}

func TestMultiRollback(t *testing.T) {
	cases := []struct {
		name   string
		ops    []grove.Op
		failAt int
		code   grove.Code
	}{
		{"check fails last", []grove.Op{
			grove.CreateOp("/new", nil, grove.ModePersistent, grove.OpenACLUnsafe),
			grove.SetOp("/a", []byte("changed"), -1),
			grove.DeleteOp("/a/b", -1),
			grove.CheckOp("/a", 0),
		}, 3, grove.CodeBadVersion},
		{"create exists in the middle", []grove.Op{
			grove.CreateOp("/x", nil, grove.ModePersistent, grove.OpenACLUnsafe),
			grove.CreateOp("/x", nil, grove.ModePersistent, grove.OpenACLUnsafe),
			grove.SetOp("/a", nil, -1),
		}, 1, grove.CodeNodeExists},
		{"first fails", []grove.Op{
			grove.DeleteOp("/missing", -1),
			grove.CreateOp("/y", nil, grove.ModePersistent, grove.OpenACLUnsafe),
		}, 0, grove.CodeNoNode},
		{"delete then use", []grove.Op{
			grove.DeleteOp("/a/b", -1),
			grove.SetOp("/a/b", nil, -1),
		}, 1, grove.CodeNoNode},
		{"sequential then fail", []grove.Op{
			grove.CreateOp("/a/s-", nil, grove.ModeEphemeralSequential, grove.OpenACLUnsafe),
			grove.CreateOp("/a/bad/", nil, grove.ModePersistent, grove.OpenACLUnsafe),
		}, 1, grove.CodeNoNode}, // the parent /a/bad is checked before the path, as in ZooKeeper
		{"sequential then bad path", []grove.Op{
			grove.CreateOp("/a/s-", nil, grove.ModeEphemeralSequential, grove.OpenACLUnsafe),
			grove.CreateOp("/a/", nil, grove.ModePersistent, grove.OpenACLUnsafe),
		}, 1, grove.CodeBadArguments},
		{"unknown op type", []grove.Op{
			grove.SetOp("/a", nil, -1),
			{Type: 99, Path: "/a"},
			grove.CheckOp("/a", -1),
		}, 1, grove.CodeBadArguments},
		{"not empty after create", []grove.Op{
			grove.DeleteOp("/a/b", -1),
			grove.CreateOp("/a/c", nil, grove.ModePersistent, grove.OpenACLUnsafe),
			grove.DeleteOp("/a", -1),
		}, 2, grove.CodeNotEmpty},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := mustHarness(t)
			c := h.newClient()
			c.mustCreate("/a", grove.ModePersistent)
			c.mustCreate("/a/b", grove.ModePersistent)
			before, digestBefore := h.tree(), h.digest()
			out := c.multi(tc.ops...)
			r := out.Result
			wantCode(t, "multi", r.Code, tc.code)
			if len(out.Events) != 0 {
				t.Errorf("events %+v", out.Events)
			}
			if len(r.Multi) != len(tc.ops) {
				t.Fatalf("results %+v", r.Multi)
			}
			for i, res := range r.Multi {
				want := command.OpResult{Type: tc.ops[i].Type}
				switch {
				case i == tc.failAt:
					want.Code = tc.code
				case i > tc.failAt:
					want.Code = grove.CodeRuntimeInconsistency
				}
				if !reflect.DeepEqual(res, want) {
					t.Errorf("op %d: %+v, want %+v", i, res, want)
				}
			}
			if !reflect.DeepEqual(h.tree(), before) {
				t.Error("tree changed")
			}
			// Apart from the session's LastSeq and its cached result, the
			// digest did not move.
			c.forgetLast()
			if h.digest() != digestBefore {
				t.Error("digest changed")
			}
			// Sequence numbers are not burnt: the next create gets the
			// counter the failed multi saw.
			if got := c.mustCreate("/a/s-", grove.ModePersistentSequential); got != "/a/s-0000000001" {
				t.Errorf("after rollback: %s", got)
			}
		})
	}
}
