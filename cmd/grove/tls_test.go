package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grovekit/grove/internal/testutil"
)

// TestPeerTLSCluster forms a three-process cluster over mutual TLS, and
// shows a node with a certificate from another CA cannot take part: the
// others log the unknown authority and it never joins the raft traffic.
func TestPeerTLSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; run without -short")
	}
	dir := t.TempDir()
	good := testutil.MustCA(t, dir, "good-ca")
	ca := good.File
	badCert, badKey := testutil.MustCA(t, dir, "evil-ca").MustNodeCert(t, dir, "evil")
	c := newProcCluster(t)
	var all []*proc
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		cert, key := good.MustNodeCert(t, dir, name) // each node's certificate names it
		all = append(all, c.add(name, "--bootstrap-expect", "3", "--peer-tls-ca", ca, "--peer-tls-cert", cert, "--peer-tls-key", key))
	}
	c.waitFor("a leader over TLS", 30*time.Second, func() bool { return c.leader(all...) != nil })
	if err := put(all[1].httpAdr, "/over-tls", "x"); err != nil {
		t.Fatalf("write over TLS: %v", err)
	}
	c.waitFor("convergence over TLS", 30*time.Second, func() bool { return c.converged(all...) })

	// An intruder with another CA's certificate joins gossip (no gossip
	// key here) and is added as a learner, but can never receive raft
	// traffic: it never catches up and is never promoted.
	evil := c.add("evil", "--peer-tls-ca", ca, "--peer-tls-cert", badCert, "--peer-tls-key", badKey)
	c.waitFor("the leader to log the refused certificate", 30*time.Second, func() bool {
		for _, p := range all {
			b, _ := os.ReadFile(filepath.Join(c.base, p.name+".log"))
			if strings.Contains(string(b), "unknown authority") || strings.Contains(string(b), "bad certificate") {
				return true
			}
		}
		return false
	})
	st, err := status(all[0].httpAdr)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range st.Voters {
		if v.Name == "evil" {
			t.Fatal("a node with a foreign certificate became a voter")
		}
	}
	d, err := digest(evil.httpAdr)
	if err == nil {
		good, _ := digest(all[0].httpAdr)
		if d == good {
			t.Fatal("a node with a foreign certificate received the cluster's state")
		}
	}
}
