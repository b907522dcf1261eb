package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/grovekit/grove"
)

func TestDeleteOrderPutsChildrenFirst(t *testing.T) {
	paths := []string{"/a", "/a/b", "/c", "/a/b/c", "/a/a", "/c/x"}
	deleteOrder(paths)
	want := []string{"/a/b/c", "/a/a", "/a/b", "/c/x", "/a", "/c"}
	if !slices.Equal(paths, want) {
		t.Fatalf("deleteOrder = %q, want %q", paths, want)
	}
}

func TestBatchesRespectOpsAndBytes(t *testing.T) {
	paths := []string{"/aaaa", "/bbbb", "/cccc", "/dddd", "/eeeeeeeeeeee", "/f"}
	for _, tc := range []struct {
		ops, bytes int
		want       [][]string
	}{
		{2, 1000, [][]string{{"/aaaa", "/bbbb"}, {"/cccc", "/dddd"}, {"/eeeeeeeeeeee", "/f"}}},
		{10, 10, [][]string{{"/aaaa", "/bbbb"}, {"/cccc", "/dddd"}, {"/eeeeeeeeeeee"}, {"/f"}}},
		{10, 1000, [][]string{paths}},
	} {
		if got := batches(paths, tc.ops, tc.bytes); !slices.EqualFunc(got, tc.want, slices.Equal) {
			t.Errorf("batches(ops %d, bytes %d) = %q, want %q", tc.ops, tc.bytes, got, tc.want)
		}
	}
	if got := batches(nil, 10, 10); len(got) != 0 {
		t.Errorf("batches(nil) = %q", got)
	}
}

// makeTree creates /big with wide children (some with children of their
// own, two levels deep) through multis, and returns how many znodes it
// made below /big.
func makeTree(t *testing.T, cc *cliCluster, wide int) int {
	t.Helper()
	s := cc.c.Session()
	defer func() { _ = s.Close(context.Background()) }()
	ctx := t.Context()
	var ops []grove.Op
	n := 0
	flush := func() {
		if _, err := s.Multi(ctx, ops...); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	add := func(p string) {
		ops = append(ops, grove.CreateOp(p, nil, grove.ModePersistent, grove.OpenACLUnsafe))
		n++
		if len(ops) == 500 {
			flush()
		}
	}
	ops = append(ops, grove.CreateOp("/big", nil, grove.ModePersistent, grove.OpenACLUnsafe))
	for i := range wide {
		p := fmt.Sprintf("/big/c%05d", i)
		add(p)
		if i%100 == 0 {
			add(p + "/x")
			add(p + "/x/y")
		}
	}
	flush()
	return n
}

func TestDeleteRecursiveInBatches(t *testing.T) {
	cc := mustCluster(t)
	below := makeTree(t, cc, 2600) // three batches and more
	cc.ok("create", "/keep")
	d := cc.mustJSON("delete", "--recursive", "/big")
	if d.Deleted == nil || *d.Deleted != below+1 {
		t.Fatalf("delete --recursive /big deleted %v, want %d", d.Deleted, below+1)
	}
	if got := cc.ok("ls", "/"); strings.Contains(got, "big\n") || !strings.Contains(got, "keep\n") {
		t.Fatalf("ls / after the delete: %q", got)
	}
}

func TestDeleteRecursiveAtomicIsAllOrNothing(t *testing.T) {
	cc := mustCluster(t)
	s := cc.c.Session()
	defer func() { _ = s.Close(context.Background()) }()
	ctx := t.Context()
	// /t/locked lets nobody delete its children, so /t/locked/child
	// cannot go, and with --atomic neither can anything else.
	noDelete := []grove.ACL{{Perms: grove.PermAll &^ grove.PermDelete, Scheme: "world", ID: "anyone"}}
	for _, op := range []struct {
		path string
		acl  []grove.ACL
	}{{"/t", grove.OpenACLUnsafe}, {"/t/a", grove.OpenACLUnsafe}, {"/t/a/b", grove.OpenACLUnsafe}, {"/t/locked", noDelete}, {"/t/locked/child", grove.OpenACLUnsafe}} {
		if _, err := s.Create(ctx, op.path, nil, grove.ModePersistent, op.acl); err != nil {
			t.Fatal(err)
		}
	}
	got := cc.fails(1, "delete", "--recursive", "--atomic", "/t")
	// The line names the znode that refused (the client's multi error).
	if got != "grove: delete /t: multi delete /t/locked/child: "+cliErr(grove.ErrNoAuth) {
		t.Fatalf("atomic delete of a protected subtree: %q", got)
	}
	if got := cc.ok("ls", "-R", "/t"); got != "/t/a\n/t/a/b\n/t/locked\n/t/locked/child\n" {
		t.Fatalf("a failed atomic delete changed the tree: %q", got)
	}
	// Without --atomic the batch holding the protected node fails, and
	// the error names it.
	if got := cc.fails(1, "delete", "--recursive", "/t"); got != "grove: delete /t: delete /t/locked/child: "+cliErr(grove.ErrNoAuth) {
		t.Fatalf("batched delete of a protected subtree: %q", got)
	}
	if _, err := s.SetACL(ctx, "/t/locked", grove.OpenACLUnsafe, -1); err != nil {
		t.Fatal(err)
	}
	if d := cc.mustJSON("delete", "-r", "--atomic", "/t"); d.Deleted == nil || *d.Deleted != 5 {
		t.Fatalf("atomic delete deleted %v, want 5", d.Deleted)
	}
	if got := cc.fails(2, "delete", "--atomic", "/t"); !strings.Contains(got, "--atomic goes with --recursive") {
		t.Fatalf("--atomic alone: %q", got)
	}
}

// create --ephemeral --hold keeps its znode until interrupted, and the
// znode goes at once when it is.
func TestCreateEphemeralHold(t *testing.T) {
	cc := mustCluster(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, errs, done := cc.background(ctx, "create", "--ephemeral", "--hold", "/held", "me")
	waitFor(t, "the path printed", func() bool { return out.String() == "/held\n" })
	if got := cc.ok("get", "/held"); got != "me" {
		t.Fatalf("held ephemeral: %q", got)
	}
	cancel()
	if code := waitExit(t, done); code != 0 || errs.String() != "" {
		t.Fatalf("interrupted hold: exit %d, stderr %q", code, errs.String())
	}
	if got := cc.fails(1, "get", "/held"); !strings.Contains(got, cliErr(grove.ErrNoNode)) {
		t.Fatalf("after the hold: %q", got)
	}
	if got := cc.fails(2, "create", "--hold", "/x"); !strings.Contains(got, "--hold goes with --ephemeral") {
		t.Fatalf("--hold alone: %q", got)
	}
}
