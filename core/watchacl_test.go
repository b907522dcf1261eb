package core_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
)

// TestPersistentWatchesRespectACLs checks ZooKeeper 3.9.2's answer to
// CVE-2024-23944: a persistent recursive watch over a subtree delivers
// events only for nodes its watcher may READ, so the names of protected
// children never reach an unauthenticated watcher; a persistent watch on
// an existing unreadable node is refused with NoAuth. The writes of an
// authorized session interleave with public ones, which the watcher does
// see (the watch works).
func TestPersistentWatchesRespectACLs(t *testing.T) {
	n := mustStartSingle(t, t.TempDir())
	ctx := t.Context()
	owner := mustSession(t, n, 10*time.Second)
	alice := []grove.Identity{{Scheme: "digest", ID: grove.DigestID("alice", "pw")}}
	private := grove.DigestACL(grove.PermAll, "alice", "pw")
	create := func(path string, acl []grove.ACL) {
		t.Helper()
		res, err := owner.submit(ctx, core.Request{Op: core.OpCreate, Path: path, ACL: acl, Identities: alice})
		if err != nil || res.Code != grove.CodeOK {
			t.Fatalf("create %s: %v %v", path, res, err)
		}
	}
	create("/app", grove.OpenACLUnsafe)
	create("/app/secret", private)

	stranger := mustSession(t, n, 10*time.Second)
	w := newEventLog()
	if _, err := n.AddWatch(stranger.id, "/app", grove.WatchPersistentRecursive, nil, w); err != nil {
		t.Fatal(err)
	}
	alicesWatch := newEventLog()
	if _, err := n.AddWatch(owner.id, "/app", grove.WatchPersistentRecursive, alice, alicesWatch); err != nil {
		t.Fatal(err)
	}
	create("/app/secret/customer-list-acme", private)
	create("/app/public", grove.OpenACLUnsafe)
	if res, err := owner.submit(ctx, core.Request{Op: core.OpSetData, Path: "/app/secret", Data: []byte("x"), Version: -1, Identities: alice}); err != nil || res.Code != grove.CodeOK {
		t.Fatalf("set: %v %v", res, err)
	}
	if res, err := owner.submit(ctx, core.Request{Op: core.OpDelete, Path: "/app/secret/customer-list-acme", Version: -1, Identities: alice}); err != nil || res.Code != grove.CodeOK {
		t.Fatalf("delete: %v %v", res, err)
	}
	create("/app/public2", grove.OpenACLUnsafe)

	// Replies follow their events, so both logs are complete here.
	for _, ev := range w.events() {
		if strings.HasPrefix(ev.Path, "/app/secret") {
			t.Errorf("the stranger saw %v", ev)
		}
	}
	if got := paths(w.events()); !equalStrings(got, []string{"/app/public", "/app/public2"}) {
		t.Fatalf("the stranger's events: %v", got)
	}
	if got := paths(alicesWatch.events()); !equalStrings(got, []string{"/app/secret/customer-list-acme", "/app/public", "/app/secret", "/app/secret/customer-list-acme", "/app/public2"}) {
		t.Fatalf("alice's events: %v", got)
	}
	if _, err := n.AddWatch(stranger.id, "/app/secret", grove.WatchPersistent, nil, w); !errors.Is(err, grove.ErrNoAuth) {
		t.Fatalf("persistent watch on an unreadable node: %v, want NoAuth", err)
	}
}

func paths(evs []grove.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Path)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
