package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/grovekit/grove/internal/testutil"
	"github.com/grovekit/grove/membership"
	"github.com/grovekit/grove/transport"
)

var testClusterKey = bytes.Repeat([]byte("c"), MinClusterKey)

// TestRogueGossipMemberIsNotAdmitted runs a cluster with a cluster key and
// mutual TLS, and a rogue server that holds the key (so it joins gossip and
// announces itself as a voter) but has a certificate from another CA, so it
// cannot speak raft. The leader refuses to add it: it never becomes a
// learner or a voter and the cluster keeps its three voters and its quorum.
// Before admission checked the peer port, such a node was added at once,
// and promoted to voter while the log was short.
func TestRogueGossipMemberIsNotAdmitted(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "ca")
	peerTLS := func(name string, ca *testutil.CA) *tls.Config {
		c, k := ca.MustNodeCert(t, dir, name)
		cfg, err := transport.LoadTLS(ca.File, c, k)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tc := startCluster(t, 3, func(c *Config) {
		c.ClusterKey = testClusterKey
		c.PeerTLS = peerTLS(c.Name, ca)
	})
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })

	rogueCA := testutil.MustCA(t, dir, "rogue-ca")
	rcfg := tc.config("rogue", 0)
	rcfg.ClusterKey = testClusterKey
	rcfg.PeerTLS = peerTLS("rogue", rogueCA)
	pem, err := os.ReadFile(ca.File) // the rogue trusts the cluster's CA: only its own certificate is wrong
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	rcfg.PeerTLS.RootCAs = pool
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rogue, err := Start(ctx, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rogue.Stop() }()

	admitted := func(l *Server) bool {
		st := l.node.Status()
		return slices.Contains(st.Voters, rogue.ID()) || slices.Contains(st.Learners, rogue.ID())
	}
	waitFor(t, "the leader to decide on the rogue", func() bool {
		l := tc.leader()
		return l != nil && (l.joinsRefused.Load() > 0 || admitted(l))
	})
	waitFor(t, "the rogue to be seen in gossip", func() bool {
		return len(tc.leader().gossip.Members()) == 4
	})
	l := tc.leader()
	st := l.node.Status()
	if slices.Contains(st.Voters, rogue.ID()) || slices.Contains(st.Learners, rogue.ID()) || len(st.Voters) != 3 {
		t.Fatalf("voters %x, learners %x: the rogue %x got in", st.Voters, st.Learners, rogue.ID())
	}
	if code, body := httpDo(t, "PUT", l, "/v1/znode/still-writable", "x"); code != 200 {
		t.Fatalf("write after the attempt: %d %s", code, body)
	}
}

// TestSilentLearnerIsRemoved checks the learner bookkeeping: a learner that
// acknowledges nothing for LearnerTimeout is removed; promotion needs an
// acknowledgement however short the log.
func TestSilentLearnerIsRemoved(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.LearnerTimeout = 300 * time.Millisecond })
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	l := tc.leader()
	const ghost = 0xdead
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// A learner at an address where nothing answers: it can never ack.
	if err := l.node.AddLearner(ctx, ghost, freeAddr(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the silent learner to be removed", func() bool {
		st := l.node.Status()
		return !slices.Contains(st.Learners, ghost) && l.wasRemoved(ghost)
	})
	if st := l.node.Status(); len(st.Voters) != 3 || slices.Contains(st.Voters, ghost) {
		t.Fatalf("voters %x", st.Voters)
	}
}

// TestPeerCertificateBoundToName checks the binding of certificates to
// nodes: a certificate naming a member may speak for its raft ID, by
// common name or DNS name; one naming another member, or any name when a
// second member announces the same ID, may not; an ID gossip does not
// know is refused.
func TestPeerCertificateBoundToName(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "n1"}, DNSNames: []string{"n1.grove.internal"}}
	for _, tt := range []struct {
		names []string
		ok    bool
	}{
		{[]string{"n1"}, true},
		{[]string{"n1.grove.internal"}, true},
		{[]string{"n2"}, false},
		{[]string{"n1", "n2"}, false}, // an impostor announces n1's ID as n2
		{nil, false},
	} {
		err := certNamesAll(cert, 7, tt.names)
		if (err == nil) != tt.ok {
			t.Errorf("names %v: %v, want ok=%v", tt.names, err, tt.ok)
		}
	}
}

// TestManualJoinPolicy runs a cluster with --join-policy manual: a new
// server that joins gossip waits (listed in the leader's
// awaiting_approval, not in the configuration) until an operator approves
// it through a follower's POST /members/add; then it becomes a voter.
func TestManualJoinPolicy(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.JoinPolicy = JoinManual })
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	cfg := tc.config("n4", 0)
	cfg.JoinPolicy = JoinManual
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n4, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n4.Stop() }()
	waitFor(t, "n4 to wait for approval", func() bool {
		l := tc.leader()
		return l != nil && slices.Contains(l.Status().AwaitingApproval, "n4")
	})
	st := tc.leader().node.Status()
	if slices.Contains(st.Voters, n4.ID()) || slices.Contains(st.Learners, n4.ID()) {
		t.Fatal("n4 joined without approval")
	}
	var via *Server
	for _, s := range tc.all() {
		if !s.node.IsLeader() {
			via = s
			break
		}
	}
	if code, body := httpDo(t, "POST", via, "/members/add?name=n4", ""); code != http.StatusAccepted {
		t.Fatalf("approve: %d %s", code, body)
	}
	waitFor(t, "n4 to become a voter", func() bool {
		l := tc.leader()
		return l != nil && slices.Contains(l.node.Status().Voters, n4.ID())
	})
}

// TestLearnerThatNeverAcksIsNotPromoted announces, in gossip, a voter
// whose peer address answers nothing, and makes it a learner by hand while
// the log is still short: the leader must not promote it (it has
// acknowledged nothing, however close to the leader's last index its
// zero match looks) and removes it once silent for LearnerTimeout. Before,
// a learner that never acknowledged anything was promoted at once while
// the leader's last index was at most 64.
func TestLearnerThatNeverAcksIsNotPromoted(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.LearnerTimeout = time.Second })
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	l := tc.leader()
	const ghost = 0xbeef
	g, err := membership.Start(membership.Config{BindAddr: freeAddr(t), Join: tc.seeds,
		Meta: membership.Meta{Name: "ghost", RaftID: ghost, PeerAddr: freeAddr(t), Role: membership.RoleVoter}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Close() }()
	waitFor(t, "the ghost in the leader's gossip", func() bool {
		for _, m := range l.gossip.Members() {
			if m.RaftID == ghost {
				return true
			}
		}
		return false
	})
	if last := l.node.Status().Commit; last > catchUpSlack {
		t.Fatalf("the log is already %d entries long: the test needs a short one", last)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := l.node.AddLearner(ctx, ghost, freeAddr(t)); err != nil {
		t.Fatal(err)
	}
	// Removal is only for learners: once it is gone, it was never promoted.
	waitFor(t, "the silent ghost to be removed", func() bool { return l.wasRemoved(ghost) })
	if st := l.node.Status(); slices.Contains(st.Voters, ghost) || len(st.Voters) != 3 {
		t.Fatalf("voters %x", st.Voters)
	}
}
