package fsm

import (
	"reflect"
	"testing"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// opsFixture builds:
//
//	/a (open) with child /a/b (version 1 after one set)
//	/nodel (open, no DELETE for anyone on it) with child /nodel/c
//	/nowrite (READ|DELETE|CREATE|ADMIN, no WRITE)
//	/noread (WRITE|ADMIN)
//	/noadmin (READ|WRITE)
func opsFixture(t *testing.T) (*harness, *client) {
	t.Helper()
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/a", grove.ModePersistent)
	c.mustCreate("/a/b", grove.ModePersistent)
	if r := c.set("/a/b", "v1", -1); r.Code != 0 {
		t.Fatal(r.Code)
	}
	c.mustCreate("/nodel", grove.ModePersistent)
	c.mustCreate("/nodel/c", grove.ModePersistent)
	for path, perms := range map[string]grove.Perm{
		"/nodel":   grove.PermAll &^ grove.PermDelete,
		"/nowrite": grove.PermAll &^ grove.PermWrite,
		"/noread":  grove.PermWrite | grove.PermAdmin,
		"/noadmin": grove.PermRead | grove.PermWrite,
	} {
		if path != "/nodel" {
			c.mustCreate(path, grove.ModePersistent)
		}
		if r := c.setACL(path, []grove.ACL{{Perms: perms, Scheme: "world", ID: "anyone"}}, -1); r.Code != 0 {
			t.Fatal(r.Code)
		}
	}
	return h, c
}

func TestOpErrorPrecedence(t *testing.T) {
	h, c := opsFixture(t)
	open := grove.OpenACLUnsafe
	cases := []struct {
		name string
		req  command.Request
		want grove.Code
	}{
		// delete
		{"delete root", command.Request{Op: command.OpDelete, Path: "/", Version: -1}, grove.CodeBadArguments},
		{"delete /zookeeper", command.Request{Op: command.OpDelete, Path: "/zookeeper", Version: -1}, grove.CodeBadArguments},
		{"delete quota", command.Request{Op: command.OpDelete, Path: "/zookeeper/quota", Version: -1}, grove.CodeBadArguments},
		{"delete an invalid path: no such node", command.Request{Op: command.OpDelete, Path: "/a/", Version: -1}, grove.CodeNoNode},
		{"delete without a slash", command.Request{Op: command.OpDelete, Path: "a", Version: -1}, grove.CodeBadArguments},
		{"delete with a NUL", command.Request{Op: command.OpDelete, Path: "/a\x00", Version: -1}, grove.CodeBadArguments},
		{"delete missing parent", command.Request{Op: command.OpDelete, Path: "/x/y", Version: -1}, grove.CodeNoNode},
		{"delete no auth on parent", command.Request{Op: command.OpDelete, Path: "/nodel/c", Version: -1}, grove.CodeNoAuth},
		{"delete no auth beats missing", command.Request{Op: command.OpDelete, Path: "/nodel/zz", Version: -1}, grove.CodeNoAuth},
		{"delete missing", command.Request{Op: command.OpDelete, Path: "/a/zz", Version: -1}, grove.CodeNoNode},
		{"delete bad version", command.Request{Op: command.OpDelete, Path: "/a/b", Version: 0}, grove.CodeBadVersion},
		{"delete bad version beats not empty", command.Request{Op: command.OpDelete, Path: "/a", Version: 5}, grove.CodeBadVersion},
		{"delete not empty", command.Request{Op: command.OpDelete, Path: "/a", Version: -1}, grove.CodeNotEmpty},
		// setData
		{"set bad path", command.Request{Op: command.OpSetData, Path: "a", Version: -1}, grove.CodeBadArguments},
		{"set missing", command.Request{Op: command.OpSetData, Path: "/zz", Version: -1}, grove.CodeNoNode},
		{"set no auth", command.Request{Op: command.OpSetData, Path: "/nowrite", Version: 7}, grove.CodeNoAuth},
		{"set bad version", command.Request{Op: command.OpSetData, Path: "/a/b", Version: 0}, grove.CodeBadVersion},
		// setACL
		{"setACL bad path", command.Request{Op: command.OpSetACL, Path: "/a/", ACL: nil, Version: -1}, grove.CodeBadArguments},
		{"setACL invalid acl beats missing", command.Request{Op: command.OpSetACL, Path: "/zz", ACL: nil, Version: -1}, grove.CodeInvalidACL},
		{"setACL missing", command.Request{Op: command.OpSetACL, Path: "/zz", ACL: open, Version: -1}, grove.CodeNoNode},
		{"setACL no auth beats version", command.Request{Op: command.OpSetACL, Path: "/noadmin", ACL: open, Version: 9}, grove.CodeNoAuth},
		{"setACL bad version", command.Request{Op: command.OpSetACL, Path: "/a", ACL: open, Version: 3}, grove.CodeBadVersion},
		// check
		{"check bad path", command.Request{Op: command.OpCheck, Path: "//", Version: -1}, grove.CodeBadArguments},
		{"check missing", command.Request{Op: command.OpCheck, Path: "/zz", Version: -1}, grove.CodeNoNode},
		{"check no auth", command.Request{Op: command.OpCheck, Path: "/noread", Version: 4}, grove.CodeNoAuth},
		{"check bad version", command.Request{Op: command.OpCheck, Path: "/a/b", Version: 0}, grove.CodeBadVersion},
		{"check ok", command.Request{Op: command.OpCheck, Path: "/a/b", Version: 1}, grove.CodeOK},
		{"check any", command.Request{Op: command.OpCheck, Path: "/noadmin", Version: -1}, grove.CodeOK},
		// unknown request op
		{"unknown op", command.Request{Op: 99, Path: "/a"}, grove.CodeUnimplemented},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.tree()
			req := tc.req
			out := c.do(&req)
			wantCode(t, tc.name, out.Result.Code, tc.want)
			if len(out.Events) != 0 || out.Result.Stat != nil {
				t.Errorf("outcome %+v", out)
			}
			if after := h.tree(); !reflect.DeepEqual(after, before) {
				t.Error("tree changed")
			}
		})
	}
}

func TestDeleteStat(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/p", grove.ModePersistent)
	c.mustCreate("/p/c", grove.ModePersistent)
	if r := c.set("/p", "data", -1); r.Code != 0 {
		t.Fatal(r.Code)
	}
	before := h.stat("/p")
	h.now += 50
	out := c.do(&command.Request{Op: command.OpDelete, Path: "/p/c", Version: 0})
	if out.Result.Code != 0 || out.Result.Stat != nil || out.Result.Path != "" {
		t.Fatalf("result %+v", out.Result)
	}
	z := int64(h.index)
	want := before
	want.Cversion++
	want.NumChildren--
	want.Pzxid = z
	if got := h.stat("/p"); got != want {
		t.Errorf("parent %+v, want %+v", got, want)
	}
	if h.exists("/p/c") {
		t.Error("node still there")
	}
	wantEv := []grove.Event{{Type: grove.EventNodeDeleted, Path: "/p/c", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/p", Zxid: z}}
	if !reflect.DeepEqual(out.Events, wantEv) {
		t.Errorf("events %+v", out.Events)
	}
	if r := c.del("/p", 1); r.Code != 0 {
		t.Fatal(r.Code)
	}
	if r := c.del("/p", -1); r.Code != grove.CodeNoNode {
		t.Fatal(r.Code)
	}
}

func TestSetDataStat(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/s", grove.ModePersistent)
	created := h.stat("/s")
	for v := int32(0); v < 3; v++ {
		h.now += 7
		out := c.do(&command.Request{Op: command.OpSetData, Path: "/s", Data: []byte("abc"), Version: v})
		z := int64(h.index)
		want := created
		want.Version, want.Mzxid, want.Mtime, want.DataLength = v+1, z, h.now, 3
		if out.Result.Code != 0 || *out.Result.Stat != want || h.stat("/s") != want {
			t.Fatalf("set %d: %+v, stored %+v, want %+v", v, out.Result, h.stat("/s"), want)
		}
		if !reflect.DeepEqual(out.Events, []grove.Event{{Type: grove.EventNodeDataChanged, Path: "/s", Zxid: z}}) {
			t.Errorf("events %+v", out.Events)
		}
	}
	// Setting empty data.
	if r := c.set("/s", "", -1); r.Code != 0 || r.Stat.DataLength != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestSetACLStat(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/s", grove.ModePersistent)
	created := h.stat("/s")
	h.now += 5
	acl := grove.DigestACL(grove.PermAll, "bob", "pw")
	out := c.do(&command.Request{Op: command.OpSetACL, Path: "/s", ACL: append(acl, acl...), Version: 0})
	want := created
	want.Aversion = 1
	if out.Result.Code != 0 || *out.Result.Stat != want || h.stat("/s") != want {
		t.Fatalf("setACL: %+v", out.Result)
	}
	if len(out.Events) != 0 {
		t.Errorf("events %+v", out.Events)
	}
	bob := []grove.Identity{{Scheme: "digest", ID: grove.DigestID("bob", "pw")}}
	got := getACL(t, h, "/s", bob)
	if !reflect.DeepEqual(got, acl) {
		t.Errorf("acl %v, want %v (deduplicated)", got, acl)
	}
	// Only bob may change it now.
	wantCode(t, "anonymous setACL", c.setACL("/s", grove.OpenACLUnsafe, -1).Code, grove.CodeNoAuth)
	r := c.do(&command.Request{Op: command.OpSetACL, Path: "/s", ACL: grove.OpenACLUnsafe, Version: 1, Identities: bob}).Result
	if r.Code != 0 || r.Stat.Aversion != 2 {
		t.Fatalf("%+v", r)
	}
}
