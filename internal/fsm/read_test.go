package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// mustBulkCreate creates count persistent children of parent named
// fmt.Sprintf(format, i) in one multi.
func (c *client) mustBulkCreate(parent, format string, count int) []string {
	c.h.t.Helper()
	ops := make([]grove.Op, count)
	names := make([]string, count)
	for i := range ops {
		names[i] = fmt.Sprintf(format, i)
		ops[i] = grove.CreateOp(grove.Join(parent, names[i]), nil, grove.ModePersistent, grove.OpenACLUnsafe)
	}
	if r := c.multi(ops...).Result; r.Code != 0 {
		c.h.t.Fatalf("bulk create: %d", r.Code)
	}
	slices.Sort(names)
	return names
}

func TestChildrenPaging(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/big", grove.ModePersistent)
	c.mustCreate("/big-sibling", grove.ModePersistent) // sorts between "/big" and "/big/..."
	c.mustCreate("/big-sibling/x", grove.ModePersistent)
	names := c.mustBulkCreate("/big", "n%d", 3000)
	c.mustCreate("/big/n5/deeper", grove.ModePersistent) // grandchildren are not listed
	parent := h.stat("/big")

	h.view(func(tx *bbolt.Tx) error {
		all, st, more, err := Children(Bolt(tx), "/big", nil, "", 0)
		if err != nil || more || !reflect.DeepEqual(all, names) || st != parent {
			t.Errorf("all: %d names, more %v, stat %+v, err %v", len(all), more, st, err)
		}
		for _, limit := range []int{1, 7, 100, 2999, 3000} {
			var got []string
			after, pages := "", 0
			for {
				page, _, more, err := Children(Bolt(tx), "/big", nil, after, limit)
				if err != nil {
					return err
				}
				pages++
				got = append(got, page...)
				if !more {
					break
				}
				if len(page) != limit {
					t.Fatalf("limit %d: short page %d with more", limit, len(page))
				}
				after = page[len(page)-1]
			}
			if !reflect.DeepEqual(got, names) {
				t.Errorf("limit %d: paged %d names", limit, len(got))
			}
			if want := (3000 + limit - 1) / limit; pages != want {
				t.Errorf("limit %d: %d pages, want %d", limit, pages, want)
			}
		}
		// after need not be a child: listing resumes at the next name.
		page, _, more, err := Children(Bolt(tx), "/big", nil, "n1000a", 2)
		if err != nil || !more || !reflect.DeepEqual(page, []string{"n1001", "n1002"}) {
			t.Errorf("after non-child: %v %v %v", page, more, err)
		}
		page, _, more, err = Children(Bolt(tx), "/big", nil, "n999", 5)
		if err != nil || more || len(page) != 0 {
			t.Errorf("after the last: %v %v %v", page, more, err)
		}
		page, _, _, err = Children(Bolt(tx), "/big/n5", nil, "", 0)
		if err != nil || !reflect.DeepEqual(page, []string{"deeper"}) {
			t.Errorf("grandchild: %v %v", page, err)
		}
		page, _, _, err = Children(Bolt(tx), "/big/n6", nil, "", 0)
		if err != nil || page == nil || len(page) != 0 {
			t.Errorf("leaf: %#v %v", page, err)
		}
		if _, _, _, err := Children(Bolt(tx), "/nope", nil, "", 0); !errors.Is(err, grove.ErrNoNode) {
			t.Errorf("missing: %v", err)
		}
		if _, _, _, err := Children(Bolt(tx), "nope", nil, "", 0); !errors.Is(err, grove.ErrBadArguments) {
			t.Errorf("bad path: %v", err)
		}
		return nil
	})
}

func TestCountDescendants(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/a", grove.ModePersistent)
	c.mustCreate("/a/b", grove.ModePersistent)
	c.mustCreate("/a/b/c", grove.ModePersistent)
	c.mustCreate("/a/d", grove.ModePersistent)
	c.mustCreate("/ab", grove.ModePersistent) // shares the prefix "/a", not a descendant
	if r := c.create("/secret", "", grove.ModePersistent, grove.DigestACL(grove.PermAll, "u", "p")); r.Code != 0 {
		t.Fatal(r.Code)
	}
	h.view(func(tx *bbolt.Tx) error {
		for path, want := range map[string]int64{"/a": 3, "/a/b": 1, "/a/b/c": 0, "/ab": 0, "/": 9, "/zookeeper": 2} {
			if got, err := CountDescendants(Bolt(tx), path, nil); err != nil || got != want {
				t.Errorf("%s: %d %v, want %d", path, got, err, want)
			}
		}
		if _, err := CountDescendants(Bolt(tx), "/secret", nil); !errors.Is(err, grove.ErrNoAuth) {
			t.Errorf("secret: %v", err)
		}
		if _, err := CountDescendants(Bolt(tx), "/x", nil); !errors.Is(err, grove.ErrNoNode) {
			t.Errorf("missing: %v", err)
		}
		return nil
	})
}

func TestEphemeralsPrefix(t *testing.T) {
	h := mustHarness(t)
	c, other := h.newClient(), h.newClient()
	c.mustCreate("/app", grove.ModePersistent)
	c.mustCreate("/app/x", grove.ModeEphemeral)
	c.mustCreate("/apple", grove.ModeEphemeral)
	c.mustCreate("/b", grove.ModeEphemeral)
	c.mustCreate("/app/p", grove.ModePersistent)
	other.mustCreate("/app/y", grove.ModeEphemeral)
	h.view(func(tx *bbolt.Tx) error {
		for prefix, want := range map[string][]string{
			"/":     {"/app/x", "/apple", "/b"},
			"":      {"/app/x", "/apple", "/b"},
			"/app":  {"/app/x", "/apple"},
			"/app/": {"/app/x"},
			"/c":    nil,
		} {
			got, err := Ephemerals(Bolt(tx), c.id, prefix)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("prefix %q: %v %v, want %v", prefix, got, err, want)
			}
		}
		got, _ := Ephemerals(Bolt(tx), other.id, "/")
		if !reflect.DeepEqual(got, []string{"/app/y"}) {
			t.Errorf("other: %v", got)
		}
		return nil
	})
}

func TestReadErrors(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	if r := c.create("/s", "data", grove.ModePersistent, grove.DigestACL(grove.PermAll, "u", "p")); r.Code != 0 {
		t.Fatal(r.Code)
	}
	u := []grove.Identity{{Scheme: "digest", ID: grove.DigestID("u", "p")}}
	h.view(func(tx *bbolt.Tx) error {
		if _, _, err := Get(Bolt(tx), "/s", nil); !errors.Is(err, grove.ErrNoAuth) {
			t.Errorf("get denied: %v", err)
		}
		data, st, err := Get(Bolt(tx), "/s", u)
		if err != nil || string(data) != "data" || st.DataLength != 4 {
			t.Errorf("get: %q %+v %v", data, st, err)
		}
		if _, err := Exists(Bolt(tx), "/s"); err != nil {
			t.Errorf("exists needs no permission: %v", err)
		}
		// ZooKeeper 3.8 (measured by cmd/grove's differential test): getACL
		// needs READ or ADMIN.
		if _, _, err := GetACL(Bolt(tx), "/s", nil); !errors.Is(err, grove.ErrNoAuth) {
			t.Errorf("getACL without READ or ADMIN: %v", err)
		}
		if _, _, err := GetACL(Bolt(tx), "/s", u); err != nil {
			t.Errorf("getACL with READ: %v", err)
		}
		for _, p := range []string{"", "s", "/s/", "/s//t"} {
			if _, _, err := Get(Bolt(tx), p, nil); !errors.Is(err, grove.ErrBadArguments) {
				t.Errorf("get %q: %v", p, err)
			}
			if _, err := Exists(Bolt(tx), p); !errors.Is(err, grove.ErrBadArguments) {
				t.Errorf("exists %q: %v", p, err)
			}
		}
		if _, err := Exists(Bolt(tx), "/nope"); !errors.Is(err, grove.ErrNoNode) {
			t.Errorf("exists missing: %v", err)
		}
		if _, _, err := GetACL(Bolt(tx), "/nope", nil); !errors.Is(err, grove.ErrNoNode) {
			t.Errorf("getACL missing: %v", err)
		}
		return nil
	})
	// Returned data is a copy that outlives the transaction.
	var data []byte
	h.view(func(tx *bbolt.Tx) error {
		var err error
		data, _, err = Get(Bolt(tx), "/s", u)
		return err
	})
	c.do(&command.Request{Op: command.OpSetData, Path: "/s", Data: []byte("DATA"), Version: -1, Identities: u})
	if string(data) != "data" {
		t.Errorf("data changed under the caller: %q", data)
	}
}

func TestWalk(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/a-b", grove.ModePersistent)
	c.mustCreate("/a", grove.ModePersistent)
	c.mustCreate("/a/b", grove.ModePersistent)
	var paths []string
	h.view(func(tx *bbolt.Tx) error {
		return Walk(Bolt(tx), func(path string, _ []byte, _ grove.Stat, acl []grove.ACL) error {
			paths = append(paths, path)
			if path != "/zookeeper/config" && !reflect.DeepEqual(acl, grove.OpenACLUnsafe) {
				t.Errorf("%s: acl %v", path, acl)
			}
			return nil
		})
	})
	want := []string{"/", "/a", "/a-b", "/a/b", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("walk %v", paths)
	}
	stop := errors.New("stop")
	err := h.db.View(func(tx *bbolt.Tx) error {
		return Walk(Bolt(tx), func(string, []byte, grove.Stat, []grove.ACL) error { return stop })
	})
	if !errors.Is(err, stop) {
		t.Errorf("walk error: %v", err)
	}
}
