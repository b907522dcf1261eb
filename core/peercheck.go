package core

import (
	"errors"
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Checks on what peers send. The transport authenticates the connection
// (cluster key or certificate) and passes the raft ID it authenticated as;
// these checks make sure a message cannot claim anything else, and that a
// message which would trip one of raft's internal invariants (raft panics
// on them, taking the node down) is dropped and counted instead of
// stepped. A well-behaved peer never sends such a message, so dropping it
// costs nothing; raft tolerates the loss of any message.

// errRefusedPeerMessage is wrapped by every refusal below.
var errRefusedPeerMessage = errors.New("core: refused peer message")

// fromNetwork lists the raft message types one node sends another. Every
// other type (MsgHup, MsgBeat, MsgUnreachable, MsgSnapStatus,
// MsgCheckQuorum, the local storage messages) is created by a node for
// itself; one arriving from the network is forged. MsgSnap arrives only
// through a snapshot stream (ReceiveSnapshot).
var fromNetwork = map[pb.MessageType]bool{
	pb.MsgProp:           true, // a follower forwards proposals to the leader
	pb.MsgApp:            true,
	pb.MsgAppResp:        true,
	pb.MsgVote:           true,
	pb.MsgVoteResp:       true,
	pb.MsgPreVote:        true,
	pb.MsgPreVoteResp:    true,
	pb.MsgHeartbeat:      true,
	pb.MsgHeartbeatResp:  true,
	pb.MsgTimeoutNow:     true,
	pb.MsgReadIndex:      true,
	pb.MsgReadIndexResp:  true,
	pb.MsgTransferLeader: true, // a follower forwards a transfer to the leader
}

// checkSender checks a decoded raft message against the connection it came
// on: the claimed sender must be the authenticated peer, the receiver this
// node, and the type one that peers exchange (for a snapshot stream's
// header: MsgSnap). It runs on the transport's goroutines.
func (n *Node) checkSender(from uint64, m *pb.Message) error {
	t := m.GetType()
	switch {
	case from == 0 || m.GetFrom() != from:
		return fmt.Errorf("%w: %v claims sender %x on the connection of peer %x", errRefusedPeerMessage, t, m.GetFrom(), from)
	case m.GetTo() != n.cfg.ID:
		return fmt.Errorf("%w: %v addressed to %x, this is %x", errRefusedPeerMessage, t, m.GetTo(), n.cfg.ID)
	case t == pb.MsgSnap:
		return nil
	case !fromNetwork[t]:
		return fmt.Errorf("%w: %v is never sent between nodes", errRefusedPeerMessage, t)
	}
	return nil
}

// checkInvariants refuses a message that raft would panic on, judged
// against lastIndex, the last index of this node's log as of the latest
// Ready (loop only). A peer's legitimate messages never exceed it: a leader
// sends a heartbeat's commit index no higher than what this node
// acknowledged, and a follower acknowledges only entries this node sent,
// which were in a Ready before they went out.
func checkInvariants(m *pb.Message, lastIndex uint64) error {
	// raft treats a message without a term as one of its own; only the
	// two a follower forwards to its leader legitimately carry none (found
	// by FuzzPeerMessage: a vote request of term 0 panics raft).
	if t := m.GetType(); m.GetTerm() == 0 && t != pb.MsgProp && t != pb.MsgReadIndex {
		return fmt.Errorf("%w: %v from %x carries no term", errRefusedPeerMessage, t, m.GetFrom())
	}
	switch m.GetType() {
	case pb.MsgHeartbeat:
		if m.GetCommit() > lastIndex {
			return fmt.Errorf("%w: heartbeat from %x commits index %d beyond the log's last %d",
				errRefusedPeerMessage, m.GetFrom(), m.GetCommit(), lastIndex)
		}
	case pb.MsgAppResp:
		if !m.GetReject() && m.GetIndex() > lastIndex {
			return fmt.Errorf("%w: append response from %x acknowledges index %d beyond the log's last %d",
				errRefusedPeerMessage, m.GetFrom(), m.GetIndex(), lastIndex)
		}
	case pb.MsgApp:
		return checkAppend(m)
	}
	return nil
}

// checkAppend checks that an append's entries follow its previous entry
// one index at a time, with terms that never fall and never exceed the
// sender's term: raft appends them without looking and panics on a gap.
func checkAppend(m *pb.Message) error {
	prevIndex, prevTerm := m.GetIndex(), m.GetLogTerm()
	if prevTerm > m.GetTerm() {
		return fmt.Errorf("%w: append from %x at term %d follows an entry of term %d",
			errRefusedPeerMessage, m.GetFrom(), m.GetTerm(), prevTerm)
	}
	for _, e := range m.GetEntries() {
		if e.GetIndex() != prevIndex+1 || e.GetTerm() < prevTerm || e.GetTerm() > m.GetTerm() {
			return fmt.Errorf("%w: append from %x at term %d: entry %d/%d does not follow %d/%d",
				errRefusedPeerMessage, m.GetFrom(), m.GetTerm(), e.GetIndex(), e.GetTerm(), prevIndex, prevTerm)
		}
		prevIndex, prevTerm = e.GetIndex(), e.GetTerm()
	}
	return nil
}
