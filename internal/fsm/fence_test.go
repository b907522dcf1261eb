package fsm

import (
	"testing"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// A fence jumps the session's sequence: requests numbered below it that
// had not applied never apply, the ones above continue from it, and a
// competing fence at the same number gets the winner's nonce back.
func TestFenceStartsANewRun(t *testing.T) {
	h := mustHarness(t)
	c := h.newClient()
	c.create("/a", "", grove.ModePersistent, grove.OpenACLUnsafe) // seq 1
	send := func(seq uint64, req *command.Request) *command.Result {
		t.Helper()
		req.Session, req.Seq = c.id, seq
		return h.apply(req).Result
	}
	if r := send(1<<32, &command.Request{Op: command.OpFence, Path: "n1"}); r.Code != grove.CodeOK || r.Path != "n1" {
		t.Fatalf("fence: %+v", r)
	}
	if r := send(1<<32, &command.Request{Op: command.OpFence, Path: "n2"}); r.Path != "n1" {
		t.Fatalf("a competing fence at the same number: %+v, want the winner's nonce", r)
	}
	// A request of the old run that had not applied is refused for good.
	if r := send(2, &command.Request{Op: command.OpCreate, Path: "/late", ACL: grove.OpenACLUnsafe}); r.Code != grove.CodeStaleRequest {
		t.Fatalf("old-run request: %+v", r)
	}
	// The old run's cached results are gone too.
	if r := send(1, &command.Request{Op: command.OpCreate, Path: "/a", ACL: grove.OpenACLUnsafe}); r.Code != grove.CodeStaleRequest {
		t.Fatalf("old-run retry: %+v", r)
	}
	if r := send(1<<32+1, &command.Request{Op: command.OpCreate, Path: "/b", ACL: grove.OpenACLUnsafe}); r.Code != grove.CodeOK {
		t.Fatalf("the new run: %+v", r)
	}
	if r := send(1<<32+3, &command.Request{Op: command.OpCreate, Path: "/c", ACL: grove.OpenACLUnsafe}); r.Code != grove.CodeOutOfOrder {
		t.Fatalf("a gap in the new run: %+v", r)
	}
}
