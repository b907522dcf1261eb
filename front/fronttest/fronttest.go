// Package fronttest serves in-process test nodes on client ports, for tests
// of remote sessions.
package fronttest

import (
	"testing"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/front"
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

// ServeAll serves every node and returns the addresses in node order.
func ServeAll(t testing.TB, nodes []*core.Node) []string {
	t.Helper()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i], _ = Serve(t, n, front.Config{})
	}
	return addrs
}
