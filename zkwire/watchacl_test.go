package zkwire_test

import (
	"strings"
	"testing"

	"github.com/grovekit/grove"
)

// createACLRec is a create request body with the given ACL entries.
func createACLRec(path string, acl []grove.ACL) rec {
	r := rec(nil).str(path).i32(0).i32(int32(len(acl)))
	for _, a := range acl {
		r = r.i32(int32(a.Perms)).str(a.Scheme).str(a.ID)
	}
	return r.i32(0)
}

// TestZKRecursiveWatchHidesUnreadableNodes runs CVE-2024-23944's scenario
// on the ZooKeeper port: a client with no credentials holds a persistent
// recursive watch on /; nodes only alice may read are created below a node
// anyone may create in. The watcher hears about the public node and never
// about the protected ones, and addWatch on the protected node answers
// NoAuth, as ZooKeeper 3.9.2 does.
func TestZKRecursiveWatchHidesUnreadableNodes(t *testing.T) {
	zc := newZKCluster(t, 1)
	writer := dialRaw(t, zc.addrs[0])
	writer.mustConnect()
	watcher := dialRaw(t, zc.addrs[0])
	watcher.mustConnect()
	alice := grove.DigestACL(grove.PermAll, "alice", "pw")
	dropBox := append(append([]grove.ACL(nil), alice...), grove.ACL{Perms: grove.PermCreate, Scheme: "world", ID: "anyone"})
	if code, _, _ := writer.call(opCreate, createACLRec("/vault", dropBox)); code != 0 {
		t.Fatalf("create /vault: %d", code)
	}
	if code, _, _ := watcher.call(opAddWatch, rec(nil).str("/").i32(1)); code != 0 {
		t.Fatalf("addWatch /: %d", code)
	}
	for _, p := range []string{"/vault/acme-payroll", "/vault/globex-keys"} {
		if code, _, _ := writer.call(opCreate, createACLRec(p, alice)); code != 0 {
			t.Fatalf("create %s: %d", p, code)
		}
	}
	if code, _, _ := writer.call(opCreate, createRec("/public", 0)); code != 0 {
		t.Fatalf("create /public: %d", code)
	}
	// The watcher's next reply comes after every event queued for it.
	_, _, events := watcher.call(opGetData, rec(nil).str("/public").boolean(false))
	var public bool
	for _, ev := range events {
		if strings.Contains(string(ev), "/vault/") {
			t.Errorf("a protected name reached the watcher: %q", ev)
		}
		public = public || strings.Contains(string(ev), "/public")
	}
	if !public {
		t.Fatalf("the watcher missed the public node: %q", events)
	}
	if code, _, _ := watcher.call(opAddWatch, rec(nil).str("/vault").i32(0)); code != -102 {
		t.Fatalf("addWatch on an unreadable node: %d, want NoAuth (-102)", code)
	}
}
