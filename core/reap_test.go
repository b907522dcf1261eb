package core_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
)

func waitGone(t *testing.T, n *core.Node, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := n.Exists(t.Context(), core.Read{}, path); errors.Is(err, grove.ErrNoNode) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s was not reaped", path)
}

// The leader reaps emptied containers and idle TTL nodes, and keeps a
// container that never had a child. In a synctest bubble: the reaper's
// ticks and the TTL run on a fake clock.
func TestLeaderReapsContainersAndTTLNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustStartSingle(t, t.TempDir())
		ctx := t.Context()
		s := mustSession(t, n, 10*time.Second)
		if _, err := s.create(ctx, "/box", nil, grove.ModeContainer); err != nil {
			t.Fatal(err)
		}
		if _, err := s.create(ctx, "/box/item", nil, grove.ModePersistent); err != nil {
			t.Fatal(err)
		}
		if _, err := s.create(ctx, "/fresh-box", nil, grove.ModeContainer); err != nil {
			t.Fatal(err)
		}
		res, err := s.submit(ctx, core.Request{Op: core.OpCreate, Path: "/ttl", Mode: grove.ModePersistentWithTTL, TTL: 100, ACL: grove.OpenACLUnsafe})
		if err != nil || res.Code != grove.CodeOK {
			t.Fatalf("create ttl: %+v %v", res, err)
		}
		if res.Stat.EphemeralOwner != grove.EphemeralOwnerTTLBit|100 {
			t.Fatalf("ttl node ephemeralOwner %x", res.Stat.EphemeralOwner)
		}
		if _, err := s.submit(ctx, core.Request{Op: core.OpDelete, Path: "/box/item", Version: -1}); err != nil {
			t.Fatal(err)
		}
		waitGone(t, n, "/box") // emptied container
		waitGone(t, n, "/ttl") // idle TTL node
		// A container that never had children stays.
		if _, _, err := n.Exists(ctx, core.Read{}, "/fresh-box"); err != nil {
			t.Fatalf("never-used container was reaped: %v", err)
		}
	})
}

func TestACLsAndSuperDigest(t *testing.T) {
	n := mustStartSingle(t, t.TempDir(), func(c *core.Config) {
		c.SuperDigest = grove.DigestID("super", "secret")
	})
	ctx := t.Context()
	s := mustSession(t, n, 10*time.Second)
	alice, err := n.Authenticate("digest", []byte("alice:pw"))
	must(t, err)
	res, err := s.submit(ctx, core.Request{Op: core.OpCreate, Path: "/private", Data: []byte("p"),
		ACL: grove.DigestACL(grove.PermAll, "alice", "pw"), Identities: []grove.Identity{alice}})
	if err != nil || res.Code != grove.CodeOK {
		t.Fatalf("create: %+v %v", res, err)
	}
	if _, _, _, err := n.Get(ctx, core.Read{}, "/private"); !errors.Is(err, grove.ErrNoAuth) {
		t.Fatalf("anonymous read: %v", err)
	}
	if d, _, _, err := n.Get(ctx, core.Read{Identities: []grove.Identity{alice}}, "/private"); err != nil || string(d) != "p" {
		t.Fatalf("alice read: %q %v", d, err)
	}
	super, err := n.Authenticate("digest", []byte("super:secret"))
	must(t, err)
	if super.Scheme != "super" {
		t.Fatalf("super digest gave %+v", super)
	}
	if _, _, _, err := n.Get(ctx, core.Read{Identities: []grove.Identity{super}}, "/private"); err != nil {
		t.Fatalf("super read: %v", err)
	}
	res, err = s.submit(ctx, core.Request{Op: core.OpSetData, Path: "/private", Data: []byte("x"), Version: -1})
	if err != nil || res.Code != grove.CodeNoAuth {
		t.Fatalf("anonymous write: %+v %v", res, err)
	}
	// ZooKeeper 3.8 accepts digest credentials without a colon (measured
	// by cmd/grove's differential test): the id is the whole string.
	if id, err := n.Authenticate("digest", []byte("no-colon")); err != nil || !strings.HasPrefix(id.ID, "no-colon:") {
		t.Fatalf("credentials without a colon: %+v %v", id, err)
	}
	if _, err := n.Authenticate("kerberos", []byte("x")); !errors.Is(err, grove.ErrAuthFailed) {
		t.Fatalf("unknown scheme: %v", err)
	}
}

// Closing a session drops all of its watches on the node, whether they
// fired, were removed or are still pending.
func TestClosedSessionLeavesNoWatches(t *testing.T) {
	n := mustStartSingle(t, t.TempDir())
	ctx := t.Context()
	s := mustSession(t, n, 10*time.Second)
	w := newEventLog()
	for i := range 20 {
		p := fmt.Sprintf("/w%d", i)
		if _, err := s.create(ctx, p, nil, grove.ModePersistent); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := n.Get(ctx, core.Read{Session: s.id, Watch: w}, p); err != nil {
			t.Fatal(err)
		}
		if _, err := n.AddWatch(s.id, p, grove.WatchPersistentRecursive, nil, w); err != nil {
			t.Fatal(err)
		}
	}
	// Fire half of the one-shot watches and remove a few recursive ones.
	for i := range 10 {
		if _, err := s.submit(ctx, core.Request{Op: core.OpSetData, Path: fmt.Sprintf("/w%d", i), Version: -1}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		must(t, n.RemoveWatches(s.id, fmt.Sprintf("/w%d", i), grove.WatchPersistentRecursive))
	}
	if got := n.WatchCount(); got != 25 {
		t.Fatalf("%d watches before the close, want 10 one-shot + 15 recursive", got)
	}
	must(t, n.CloseSession(ctx, s.id, s.next()))
	if got := n.WatchCount(); got != 0 {
		t.Fatalf("%d watches left after the session closed", got)
	}
}
