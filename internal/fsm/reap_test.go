package fsm

import (
	"reflect"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// candidates returns the reap candidates at nowMs.
func (h *harness) candidates(nowMs int64, limit int) []ReapCandidate {
	h.t.Helper()
	var out []ReapCandidate
	h.view(func(tx *bbolt.Tx) error {
		var err error
		out, err = ReapCandidates(Bolt(tx), nowMs, limit)
		return err
	})
	return out
}

// reap applies a KindReap entry for cands at h.now.
func (h *harness) reap(cands ...ReapCandidate) *Outcome {
	h.t.Helper()
	items := make([]command.ReapItem, len(cands))
	for i, c := range cands {
		items[i] = command.ReapItem{Path: c.Path, Czxid: c.Czxid}
	}
	return h.apply(&command.Reap{Items: items})
}

func TestReapContainers(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.mustCreate("/fresh", grove.ModeContainer) // never had a child
	c.mustCreate("/busy", grove.ModeContainer)
	c.mustCreate("/busy/x", grove.ModePersistent)
	c.mustCreate("/used", grove.ModeContainer)
	c.mustCreate("/used/x", grove.ModeEphemeral)
	c.mustCreate("/plain", grove.ModePersistent)
	fresh := h.stat("/fresh")
	if got := h.candidates(h.now, 0); len(got) != 0 {
		t.Fatalf("candidates %v", got)
	}
	// Reaping a container that never had a child, or a plain node, or one
	// with children, does nothing even when asked.
	before := h.digest()
	h.reap(ReapCandidate{"/fresh", fresh.Czxid}, ReapCandidate{"/plain", h.stat("/plain").Czxid},
		ReapCandidate{"/busy", h.stat("/busy").Czxid}, ReapCandidate{"/", 0}, ReapCandidate{"bad", 0})
	if h.digest() != before {
		t.Fatal("reap of non-qualifying nodes changed the state")
	}

	if r := c.del("/used/x", -1); r.Code != 0 {
		t.Fatal(r.Code)
	}
	used := h.stat("/used")
	want := []ReapCandidate{{"/used", used.Czxid}}
	if got := h.candidates(h.now, 0); !reflect.DeepEqual(got, want) {
		t.Fatalf("candidates %v, want %v", got, want)
	}
	out := h.reap(want...)
	z := int64(h.index)
	wantEv := []grove.Event{{Type: grove.EventNodeDeleted, Path: "/used", Zxid: z}, {Type: grove.EventNodeChildrenChanged, Path: "/", Zxid: z}}
	if out.Kind != command.KindReap || !reflect.DeepEqual(out.Events, wantEv) {
		t.Fatalf("reap %+v", out)
	}
	if h.exists("/used") || len(h.candidates(h.now, 0)) != 0 {
		t.Fatal("container survived")
	}

	// A container recreated since the candidate was listed is skipped.
	c.mustCreate("/used", grove.ModeContainer)
	c.mustCreate("/used/y", grove.ModePersistent)
	c.del("/used/y", -1)
	before = h.digest()
	h.reap(want...) // the old Czxid
	if h.digest() != before || !h.exists("/used") {
		t.Fatal("Czxid mismatch reaped")
	}
	// Deleting a container normally drops it from the index.
	c.del("/used", -1)
	if got := h.candidates(h.now, 0); len(got) != 0 {
		t.Fatalf("candidates after delete %v", got)
	}
}

func TestReapTTL(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	h.now = 10_000
	if r := c.createTTL("/t", grove.ModePersistentWithTTL, 1000); r.Code != 0 {
		t.Fatal(r.Code)
	}
	if r := c.createTTL("/s-", grove.ModePersistentSequentialWithTTL, 500); r.Code != 0 || r.Path != "/s-0000000001" {
		t.Fatalf("%+v", r)
	}
	if r := c.createTTL("/kids", grove.ModePersistentWithTTL, 1); r.Code != 0 {
		t.Fatal(r.Code)
	}
	c.mustCreate("/kids/k", grove.ModePersistent)
	tStat, sStat := h.stat("/t"), h.stat("/s-0000000001")
	if got := h.candidates(10_500, 0); len(got) != 0 {
		t.Errorf("at exactly the TTL: %v", got)
	}
	want := []ReapCandidate{{"/s-0000000001", sStat.Czxid}}
	if got := h.candidates(10_501, 0); !reflect.DeepEqual(got, want) {
		t.Errorf("at 10501: %v", got)
	}
	both := []ReapCandidate{{"/s-0000000001", sStat.Czxid}, {"/t", tStat.Czxid}}
	if got := h.candidates(20_000, 0); !reflect.DeepEqual(got, both) {
		t.Errorf("at 20000: %v", got)
	}
	if got := h.candidates(20_000, 1); !reflect.DeepEqual(got, both[:1]) {
		t.Errorf("limit 1: %v", got)
	}

	// The entry's own time decides: a reap stamped too early does nothing.
	h.now = 10_400
	before := h.digest()
	h.reap(both...)
	if h.digest() != before {
		t.Fatal("early reap changed the state")
	}
	h.now = 10_900
	h.reap(both...)
	if h.exists("/s-0000000001") || !h.exists("/t") {
		t.Fatal("reap at 10900 should take only /s-...")
	}
	// A setData refreshes mtime and so postpones the reaping.
	h.now = 10_950
	c.set("/t", "x", -1)
	h.now = 11_500
	h.reap(ReapCandidate{"/t", tStat.Czxid})
	if !h.exists("/t") {
		t.Fatal("refreshed TTL node reaped")
	}
	h.now = 11_951
	out := h.reap(ReapCandidate{"/t", tStat.Czxid})
	if h.exists("/t") || len(out.Events) != 2 {
		t.Fatalf("TTL node not reaped: %+v", out)
	}
	// A TTL node with children stays however old it is.
	if got := h.candidates(1<<40, 0); len(got) != 0 {
		t.Errorf("left: %v", got)
	}
}
