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

	// An intruder that holds the gossip key (the per-user one every
	// process here shares) but a certificate from another CA joins gossip
	// and announces itself as a voter; the leader's handshake with it
	// fails, so it is never added: not as a learner, not as a voter, and
	// the cluster keeps its three voters.
	evil := c.add("evil", "--peer-tls-ca", ca, "--peer-tls-cert", badCert, "--peer-tls-key", badKey)
	c.waitFor("the leader to refuse the intruder", 30*time.Second, func() bool {
		for _, p := range all {
			b, _ := os.ReadFile(filepath.Join(c.base, p.name+".log"))
			if strings.Contains(string(b), "did not prove itself on the peer port") && strings.Contains(string(b), "member=evil") {
				return true
			}
		}
		return false
	})
	st, err := status(all[0].httpAdr)
	if err != nil {
		t.Fatal(err)
	}
	gossiped := false
	for _, m := range st.GossipMembers {
		gossiped = gossiped || m.Name == "evil"
	}
	if !gossiped {
		t.Fatal("the intruder is not in gossip: the test does not test admission")
	}
	if len(st.Voters) != 3 || len(st.Learners) != 0 {
		t.Fatalf("voters %v, learners %v: the intruder got in", voterNames(st), st.Learners)
	}
	d, err := digest(evil.httpAdr)
	if err == nil {
		good, _ := digest(all[0].httpAdr)
		if d == good {
			t.Fatal("a node with a foreign certificate received the cluster's state")
		}
	}
}
