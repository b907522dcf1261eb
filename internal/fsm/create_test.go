package fsm

import (
	"fmt"
	"reflect"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

func TestInitTree(t *testing.T) {
	h := mustHarness(t)
	before := h.digest()
	if err := h.db.Update(Init); err != nil {
		t.Fatal(err)
	}
	if h.digest() != before {
		t.Fatal("second Init changed the state")
	}
	for p, want := range map[string]grove.Stat{
		"/":                 {NumChildren: 1, Cversion: -1}, // as ZooKeeper 3.8 shows them
		"/zookeeper":        {NumChildren: 2, Cversion: -2},
		"/zookeeper/quota":  {},
		"/zookeeper/config": {Aversion: -1}, // as ZooKeeper 3.8 shows it
	} {
		if got := h.stat(p); got != want {
			t.Errorf("%s: stat %+v, want %+v", p, got, want)
		}
	}
	h.view(func(tx *bbolt.Tx) error {
		names, _, _, err := Children(Bolt(tx), "/", nil, "", 0)
		if err != nil || !reflect.DeepEqual(names, []string{"zookeeper"}) {
			t.Errorf("children of /: %v %v", names, err)
		}
		acl, _, err := GetACL(Bolt(tx), "/zookeeper/quota", nil)
		if err != nil || !reflect.DeepEqual(acl, grove.OpenACLUnsafe) {
			t.Errorf("acl: %v %v", acl, err)
		}
		i, term, err := Applied(Bolt(tx))
		if err != nil || i != 0 || term != 0 {
			t.Errorf("applied %d %d %v", i, term, err)
		}
		return nil
	})
}

func TestCreateErrorPrecedence(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/a", grove.ModePersistent)
	c.mustCreate("/eph", grove.ModeEphemeral)
	c.mustCreate("/ro", grove.ModePersistent)
	c.mustCreate("/ro/c", grove.ModePersistent)
	if r := c.setACL("/ro", grove.ReadACLUnsafe, -1); r.Code != 0 {
		t.Fatal(r.Code)
	}
	open := grove.OpenACLUnsafe
	cases := []struct {
		name string
		path string
		mode grove.CreateMode
		ttl  int64
		acl  []grove.ACL
		want grove.Code
	}{
		{"bad mode beats bad path", "bad", 7, 0, nil, grove.CodeBadArguments},
		{"negative mode", "/x", -1, 0, open, grove.CodeBadArguments},
		{"ttl zero", "/x", grove.ModePersistentWithTTL, 0, open, grove.CodeBadArguments},
		{"ttl negative", "/x", grove.ModePersistentSequentialWithTTL, -5, open, grove.CodeBadArguments},
		{"ttl too large", "/x", grove.ModePersistentWithTTL, grove.MaxTTL + 1, open, grove.CodeBadArguments},
		{"bad acl beats a bad path", "/a/", grove.ModePersistent, 0, nil, grove.CodeInvalidACL},
		{"no slash beats bad acl", "a", grove.ModePersistent, 0, nil, grove.CodeBadArguments},
		{"trailing slash", "/a/", grove.ModePersistent, 0, open, grove.CodeBadArguments},
		{"relative", "a", grove.ModePersistent, 0, open, grove.CodeBadArguments},
		{"empty segment: missing parent first", "/a//b", grove.ModePersistent, 0, open, grove.CodeNoNode},
		{"empty segment", "//a", grove.ModePersistent, 0, open, grove.CodeBadArguments},
		{"nul byte beats missing parent", "/nope/a\x00", grove.ModePersistent, 0, open, grove.CodeBadArguments},
		{"dot segment", "/a/..", grove.ModePersistent, 0, open, grove.CodeBadArguments},
		{"control char", "/a\x01", grove.ModePersistent, 0, open, grove.CodeBadArguments},
		{"empty path", "", grove.ModePersistent, 0, open, grove.CodeBadArguments},
		{"bad acl beats missing parent", "/nope/x", grove.ModePersistent, 0, nil, grove.CodeInvalidACL},
		{"missing parent", "/nope/x", grove.ModePersistent, 0, open, grove.CodeNoNode},
		{"missing parent beats no auth", "/ro/nope/x", grove.ModePersistent, 0, open, grove.CodeNoNode},
		{"no auth beats exists", "/ro/c", grove.ModePersistent, 0, open, grove.CodeNoAuth},
		{"no create on parent", "/ro/x", grove.ModePersistent, 0, open, grove.CodeNoAuth},
		{"exists", "/a", grove.ModePersistent, 0, open, grove.CodeNodeExists},
		{"root", "/", grove.ModePersistent, 0, open, grove.CodeNodeExists},
		{"child of ephemeral", "/eph/x", grove.ModePersistent, 0, open, grove.CodeNoChildrenForEphemerals},
		{"seq child of ephemeral", "/eph/", grove.ModeEphemeralSequential, 0, open, grove.CodeNoChildrenForEphemerals},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.tree()
			out := c.do(&command.Request{Op: command.OpCreate, Path: tc.path, Mode: tc.mode, TTL: tc.ttl, ACL: tc.acl})
			wantCode(t, tc.name, out.Result.Code, tc.want)
			if len(out.Events) != 0 || out.Result.Stat != nil || out.Result.Path != "" {
				t.Errorf("failed create returned %+v", out)
			}
			if after := h.tree(); !reflect.DeepEqual(after, before) {
				t.Errorf("tree changed: %v", after)
			}
		})
	}
}

func TestCreateStatByMode(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/p", grove.ModePersistent)
	cases := []struct {
		mode  grove.CreateMode
		ttl   int64
		owner int64
	}{
		{grove.ModePersistent, 0, 0},
		{grove.ModeEphemeral, 0, int64(c.id)},
		{grove.ModePersistentSequential, 0, 0},
		{grove.ModeEphemeralSequential, 0, int64(c.id)},
		{grove.ModeContainer, 0, grove.EphemeralOwnerContainer},
		{grove.ModePersistentWithTTL, 5000, grove.EphemeralOwnerTTLBit | 5000},
		{grove.ModePersistentSequentialWithTTL, grove.MaxTTL, grove.EphemeralOwnerTTLBit | grove.MaxTTL},
	}
	for i, tc := range cases {
		t.Run(tc.mode.String(), func(t *testing.T) {
			h.now += 10
			parentBefore := h.stat("/p")
			path := fmt.Sprintf("/p/n%d", i)
			out := c.do(&command.Request{Op: command.OpCreate, Path: path, Data: []byte("hello"), Mode: tc.mode, TTL: tc.ttl, ACL: grove.OpenACLUnsafe})
			r := out.Result
			if r.Code != 0 {
				t.Fatalf("code %d", r.Code)
			}
			if tc.mode.IsSequential() {
				path += fmt.Sprintf("%010d", parentBefore.Cversion)
			}
			if r.Path != path {
				t.Fatalf("path %q, want %q", r.Path, path)
			}
			z := int64(h.index)
			want := grove.Stat{Czxid: z, Mzxid: z, Pzxid: z, Ctime: h.now, Mtime: h.now, DataLength: 5, EphemeralOwner: tc.owner}
			if *r.Stat != want {
				t.Errorf("result stat %+v, want %+v", *r.Stat, want)
			}
			if got := h.stat(path); got != want {
				t.Errorf("stored stat %+v, want %+v", got, want)
			}
			p := h.stat("/p")
			wantP := parentBefore
			wantP.Cversion++
			wantP.NumChildren++
			wantP.Pzxid = z
			if p != wantP {
				t.Errorf("parent %+v, want %+v", p, wantP)
			}
			wantEv := []grove.Event{{Type: grove.EventNodeCreated, Path: path, Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/p", Zxid: z}}
			if !reflect.DeepEqual(out.Events, wantEv) {
				t.Errorf("events %+v", out.Events)
			}
			var data []byte
			h.view(func(tx *bbolt.Tx) error {
				var err error
				data, _, err = Get(Bolt(tx), path, nil)
				return err
			})
			if string(data) != "hello" {
				t.Errorf("data %q", data)
			}
		})
	}
	// A child of the root reports "/" as the parent in its event.
	out := c.do(&command.Request{Op: command.OpCreate, Path: "/top", Mode: grove.ModePersistent, ACL: grove.OpenACLUnsafe})
	if out.Events[1].Path != "/" {
		t.Errorf("root child event %+v", out.Events)
	}
}

func TestSequentialNaming(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/q", grove.ModePersistent)
	names := []string{}
	for range 3 {
		names = append(names, c.mustCreate("/q/job-", grove.ModePersistentSequential))
	}
	want := []string{"/q/job-0000000000", "/q/job-0000000001", "/q/job-0000000002"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("names %v", names)
	}
	// The counter counts creates; a delete does not move it, as in
	// ZooKeeper 3.8 (cmd/grove's differential test), though it moves the
	// cversion.
	if r := c.del("/q/job-0000000002", -1); r.Code != 0 {
		t.Fatal(r.Code)
	}
	if got := c.mustCreate("/q/job-", grove.ModePersistentSequential); got != "/q/job-0000000003" {
		t.Fatalf("after delete: %s", got)
	}
	if st := h.stat("/q"); st.Cversion != 5 {
		t.Fatalf("cversion after 4 creates and a delete: %d", st.Cversion)
	}
	// A sequential path ending in "/" makes the suffix the whole name.
	if got := c.mustCreate("/q/", grove.ModeEphemeralSequential); got != "/q/0000000004" {
		t.Fatalf("bare: %s", got)
	}
	if got := c.mustCreate("/", grove.ModePersistentSequential); got != "/0000000001" {
		t.Fatalf("root seq: %s", got)
	}
	// The counter is 64-bit: past 2^31 and 10^10 it keeps counting.
	for _, tc := range []struct {
		counter  uint64
		name     string
		cversion int32
	}{
		{1<<31 - 1, "/q/x2147483647", -1 << 31},
		{1 << 32, "/q/x4294967296", 1},
		{12345678901, "/q/x12345678901", -539222986},
	} {
		n := h.readNodeRecord("/q")
		n.cversion, n.seq = tc.counter, tc.counter
		h.seedNode("/q", n)
		if got := c.mustCreate("/q/x", grove.ModePersistentSequential); got != tc.name {
			t.Errorf("counter %d: %s, want %s", tc.counter, got, tc.name)
		}
		if got := h.stat("/q").Cversion; got != tc.cversion {
			t.Errorf("counter %d: cversion %d, want %d", tc.counter, got, tc.cversion)
		}
	}
}

func TestCreateTooLongPath(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	long := "/" + fmt.Sprintf("%0*d", maxPathLen, 0)
	wantCode(t, "long", c.create(long, "", grove.ModePersistent, grove.OpenACLUnsafe).Code, grove.CodeBadArguments)
	edge := "/" + fmt.Sprintf("%0*d", maxPathLen-5, 0)
	wantCode(t, "long seq", c.create(edge, "", grove.ModePersistentSequential, grove.OpenACLUnsafe).Code, grove.CodeBadArguments)
	ok := "/" + fmt.Sprintf("%0*d", maxPathLen-1, 0)
	wantCode(t, "max", c.create(ok, "", grove.ModeEphemeral, grove.OpenACLUnsafe).Code, grove.CodeOK)
	if out := c.do(&command.Request{Op: command.OpCloseSession}); len(out.Closed) != 1 {
		t.Fatal("close")
	}
}
