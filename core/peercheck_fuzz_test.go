package core

import (
	"log/slog"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/grovekit/grove/internal/logutil"
)

// FuzzPeerMessage decodes arbitrary bytes as a peer's raft message, runs
// the checks of peercheck.go, and steps every message they let through
// into a raft node (a follower of a three-node configuration with a few
// entries): raft must never panic on one. A panic here is a message an
// authenticated peer could use to take a node down.
func FuzzPeerMessage(f *testing.F) {
	seed := func(m *pb.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(3)), Commit: new(uint64(1) << 40)})
	seed(&pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(3)), Index: new(uint64(3)), LogTerm: new(uint64(1)),
		Entries: []*pb.Entry{{Index: new(uint64(1)), Term: new(uint64(3))}}, Commit: new(uint64(9))})
	seed(&pb.Message{Type: pb.MsgAppResp.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1)), Index: new(uint64(99))})
	seed(&pb.Message{Type: pb.MsgVote.Enum(), From: new(uint64(3)), To: new(uint64(1)), Term: new(uint64(5)), Index: new(uint64(7)), LogTerm: new(uint64(4))})
	n := &Node{cfg: Config{ID: 1}}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := &pb.Message{}
		if proto.Unmarshal(data, m) != nil {
			return
		}
		ms := raft.NewMemoryStorage()
		cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
		if err := ms.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(0)), Term: new(uint64(0)), ConfState: cs}}); err != nil {
			t.Fatal(err)
		}
		ents := []*pb.Entry{{Index: new(uint64(1)), Term: new(uint64(1))}, {Index: new(uint64(2)), Term: new(uint64(1))}, {Index: new(uint64(3)), Term: new(uint64(1))}}
		if err := ms.Append(ents); err != nil {
			t.Fatal(err)
		}
		if err := ms.SetHardState(&pb.HardState{Term: new(uint64(1)), Commit: new(uint64(2))}); err != nil {
			t.Fatal(err)
		}
		rn, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: ms,
			MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16, CheckQuorum: true, PreVote: true, AsyncStorageWrites: true,
			Logger: logutil.Raft(slog.New(slog.DiscardHandler))})
		if err != nil {
			t.Fatal(err)
		}
		last, _ := ms.LastIndex()
		if n.checkSender(m.GetFrom(), m) != nil || m.GetType() == pb.MsgSnap || checkInvariants(m, last) != nil {
			return
		}
		_ = rn.Step(m)
	})
}
