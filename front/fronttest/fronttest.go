// Package fronttest serves in-process test nodes on client ports, for tests
// of remote sessions.
package fronttest

import (
	"testing"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/front"
	"github.com/grovekit/grove/internal/memnet"
	"github.com/grovekit/grove/internal/testutil"
)

// Serve serves n's client protocol on a fresh loopback port until the test
// ends and returns the port's address and the server. cfg.Node is set to n.
func Serve(t testing.TB, n *core.Node, cfg front.Config) (string, *front.Server) {
	t.Helper()
	cfg.Node = n
	s, err := front.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.Serve(t, s, front.ErrClosed), s
}

// ServeAllIn serves every node on nw, an in-memory network (for tests in a
// testing/synctest bubble), and returns the addresses in node order; dial
// them with nw.Dial.
func ServeAllIn(t testing.TB, nw *memnet.Network, nodes []*core.Node) []string {
	t.Helper()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		s, err := front.New(front.Config{Node: n})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := nw.Listen("")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = testutil.ServeOn(t, s, ln, front.ErrClosed)
	}
	return addrs
}

// ServeAll serves every node and returns the addresses in node order.
func ServeAll(t testing.TB, nodes []*core.Node) []string {
	t.Helper()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i], _ = Serve(t, n, front.Config{})
	}
	return addrs
}
