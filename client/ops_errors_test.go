package client_test

import (
	"errors"
	"testing"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core/coretest"
)

// A call's error names the call and the path as the caller gave it, and
// keeps the grove error's identity; a multi names its failing op.
func TestErrorsNameOpAndPath(t *testing.T) {
	c := coretest.NewCluster(t, 1)
	root := mustSession(t, c.WaitLeader(t.Context()))
	if _, err := root.Create(t.Context(), "/app", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	// Under a chroot: the error names the path the caller gave.
	s := mustSession(t, c.WaitLeader(t.Context()), client.WithChroot("/app"))
	check := func(err error, want string, is error) {
		t.Helper()
		var pe *client.PathError
		if err == nil || err.Error() != want || !errors.Is(err, is) || !errors.As(err, &pe) {
			t.Fatalf("error %v, want %q (a PathError, Is %v)", err, want, is)
		}
	}
	_, _, err := s.Get(t.Context(), "/missing")
	check(err, "get /missing: "+grove.ErrNoNode.Error(), grove.ErrNoNode)
	_, err = s.Create(t.Context(), "/a/b", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	check(err, "create /a/b: "+grove.ErrNoNode.Error(), grove.ErrNoNode)
	_, err = s.Multi(t.Context(), grove.CreateOp("/x", nil, grove.ModePersistent, grove.OpenACLUnsafe), grove.DeleteOp("/nope", -1))
	check(err, "multi delete /nope: "+grove.ErrNoNode.Error(), grove.ErrNoNode)
	_, _, err = s.ChildrenPage(t.Context(), "/", "", 0)
	check(err, "children /: client: page limit 0: "+grove.ErrBadArguments.Error(), grove.ErrBadArguments)
}
