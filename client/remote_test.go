package client_test

import (
	"context"
	"testing"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/front/fronttest"
)

func mustDial(t *testing.T, addrs []string, opts ...client.Option) *client.Session {
	t.Helper()
	s, err := client.Dial(t.Context(), addrs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func TestRemoteBasics(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	c.WaitLeader(t.Context())
	addrs := fronttest.ServeAll(t, c.Nodes())
	s := mustDial(t, addrs)
	ctx := t.Context()
	if _, err := s.Create(ctx, "/a", []byte("x"), grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	data, stat, ch, err := s.GetW(ctx, "/a")
	if err != nil || string(data) != "x" || stat.Version != 0 {
		t.Fatalf("get: %q %+v %v", data, stat, err)
	}
	if _, err := s.Set(ctx, "/a", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	ev := <-ch
	if ev.Type != grove.EventNodeDataChanged || ev.Path != "/a" {
		t.Fatalf("event %+v", ev)
	}
	if _, err := s.Create(ctx, "/a", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != grove.ErrNodeExists {
		t.Fatalf("second create: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
