package core_test

import (
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
)

// TestForgedPeerMessagesAreDropped hands a follower the messages an
// attacker with a peer connection would send: each is dropped and counted,
// the follower stays up, and the cluster goes on writing and converges.
// Without the checks the first one panics raft ("tocommit(…) is out of
// range") and takes the process down.
func TestForgedPeerMessagesAreDropped(t *testing.T) {
	ctx := t.Context()
	c := coretest.NewCluster(t, 3)
	defer c.Close()
	leader := c.WaitLeader(ctx)
	s := mustSession(t, leader, 30*time.Second)
	if _, err := s.create(ctx, "/before", nil, grove.ModePersistent); err != nil {
		t.Fatal(err)
	}
	f := c.WaitFollower(ctx)
	lead, other := leader.ID(), uint64(0)
	for _, id := range c.IDs() {
		if id != lead && id != f.ID() {
			other = id
		}
	}
	st := f.Status()
	forged := []struct {
		name string
		from uint64 // the authenticated sender
		m    *pb.Message
	}{
		{"heartbeat committing beyond the log", lead, &pb.Message{
			Type: pb.MsgHeartbeat.Enum(), From: new(lead), To: new(f.ID()), Term: new(st.Term + 1), Commit: new(uint64(1) << 40)}},
		{"message claiming another sender", other, &pb.Message{
			Type: pb.MsgHeartbeat.Enum(), From: new(lead), To: new(f.ID()), Term: new(st.Term), Commit: new(st.Commit)}},
		{"message for another node", lead, &pb.Message{
			Type: pb.MsgHeartbeat.Enum(), From: new(lead), To: new(other), Term: new(st.Term)}},
		{"local-only type", lead, &pb.Message{Type: pb.MsgHup.Enum(), From: new(lead), To: new(f.ID())}},
		{"append with a gap", lead, &pb.Message{
			Type: pb.MsgApp.Enum(), From: new(lead), To: new(f.ID()), Term: new(st.Term + 1),
			Index: new(st.Commit), LogTerm: new(st.Term),
			Entries: []*pb.Entry{{Index: new(uint64(1)), Term: new(st.Term + 1)}}}},
		{"append response beyond the log", other, &pb.Message{
			Type: pb.MsgAppResp.Enum(), From: new(other), To: new(f.ID()), Term: new(st.Term), Index: new(uint64(1) << 40)}},
	}
	base := mustStats(t, f).PeerMessagesRefused
	for i, tt := range forged {
		f.ReceiveRaft(tt.from, tt.m)
		want := base + uint64(i) + 1
		waitUntil(t, fmt.Sprintf("%q to be refused", tt.name), func() bool { return mustStats(t, f).PeerMessagesRefused == want })
	}
	for i := range 20 {
		if _, err := s.create(ctx, fmt.Sprintf("/after-%d", i), nil, grove.ModePersistent); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitConverged(ctx)
	if got := f.Status().Term; got != st.Term {
		t.Fatalf("the follower's term moved from %d to %d", st.Term, got)
	}
}

func mustStats(t *testing.T, n interface {
	Stats() (core.Stats, error)
}) core.Stats {
	t.Helper()
	s, err := n.Stats()
	must(t, err)
	return s
}

// waitUntil polls cond until it holds, for at most 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
