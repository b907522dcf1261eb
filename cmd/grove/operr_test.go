package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
)

// opErr names the op and path once, keeps what wraps the client's error
// (a timeout note), and keeps the error's identity.
func TestOpErrNamesThePathOnce(t *testing.T) {
	pe := &client.PathError{Op: "get", Path: "/x", Err: grove.ErrNoNode}
	for _, c := range []struct {
		err  error
		want string
		is   error
	}{
		{pe, "get /x: " + grove.ErrNoNode.Error(), grove.ErrNoNode},
		{fmt.Errorf("no answer within 10s: %w", &client.PathError{Op: "get", Path: "/x", Err: context.DeadlineExceeded}),
			"get /x: no answer within 10s: context deadline exceeded", context.DeadlineExceeded},
		{&client.PathError{Op: "exists", Path: "/other", Err: grove.ErrNoAuth}, // another path: kept
			"get /x: exists /other: " + grove.ErrNoAuth.Error(), grove.ErrNoAuth},
		{errors.New("plain"), "get /x: plain", nil},
	} {
		got := opErr("get", "/x", c.err)
		if got.Error() != c.want || (c.is != nil && !errors.Is(got, c.is)) {
			t.Errorf("opErr(%v) = %q, want %q (Is %v)", c.err, got, c.want, c.is)
		}
	}
	// causeOf (a txn's line names the op itself) keeps the timeout note.
	late := fmt.Errorf("no answer within 10s: %w", &client.PathError{Op: "multi check", Path: "/c", Err: context.DeadlineExceeded})
	if got := causeOf(late); got.Error() != "no answer within 10s: context deadline exceeded" || !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("causeOf = %q", got)
	}
}
