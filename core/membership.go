package core

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.etcd.io/raft/v3"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/grovekit/grove"
)

// AddLearner adds a node as a non-voting learner reachable at addr (the
// address travels in the conf change, so every member's transport learns
// it). The cluster streams it a snapshot or the log; promote it with
// AddVoter once caught up. It must be called on the leader
// (grove.ErrNotLeader otherwise) and blocks until the change is applied
// here.
func (n *Node) AddLearner(ctx context.Context, id uint64, addr string) error {
	return n.changeConf(ctx, pb.ConfChangeAddLearnerNode, id, addr, func(cs Status) bool {
		return slices.Contains(cs.Learners, id)
	})
}

// AddVoter adds a node as a voter, or promotes a learner. See AddLearner.
func (n *Node) AddVoter(ctx context.Context, id uint64, addr string) error {
	return n.changeConf(ctx, pb.ConfChangeAddNode, id, addr, func(cs Status) bool {
		return slices.Contains(cs.Voters, id)
	})
}

// RemoveMember removes a voter or learner from the configuration. Raft IDs
// are never reused: a removed node must come back with a new ID. It must be
// called on the leader, except that a node may remove itself (a graceful
// leave; raft forwards the change to the leader).
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	if st := n.Status(); len(st.Voters) == 1 && st.Voters[0] == id {
		return fmt.Errorf("core: %x is the last voter; a cluster cannot remove it: %w", id, grove.ErrBadArguments)
	}
	return n.changeConf(ctx, pb.ConfChangeRemoveNode, id, "", func(cs Status) bool {
		return !slices.Contains(cs.Voters, id) && !slices.Contains(cs.Learners, id)
	})
}

func (n *Node) changeConf(ctx context.Context, typ pb.ConfChangeType, id uint64, addr string, done func(Status) bool) error {
	if id == 0 {
		return fmt.Errorf("core: member id 0: %w", grove.ErrBadArguments)
	}
	if selfRemoval := typ == pb.ConfChangeRemoveNode && id == n.cfg.ID; !n.IsLeader() && !selfRemoval {
		return grove.ErrNotLeader
	}
	cc := &pb.ConfChange{Type: typ.Enum(), NodeId: new(id), Context: []byte(addr)}
	// Raft silently turns a conf change it cannot take now (another one
	// pending) into an empty entry, and a forwarded one may be lost: propose
	// again every RetryInterval until the change shows or ctx ends.
	for {
		if err := n.proposeConf(ctx, cc); err != nil {
			return err
		}
		deadline := time.Now().Add(n.cfg.RetryInterval)
		for time.Now().Before(deadline) {
			if done(n.Status()) {
				return nil
			}
			if err := sleepCtx(ctx, n.cfg.TickInterval, n.donec, n.stopErr); err != nil {
				return err
			}
		}
	}
}

func (n *Node) proposeConf(ctx context.Context, cc pb.ConfChangeI) error {
	errc := make(chan error, 1)
	select {
	case n.confc <- confRequest{cc: cc, errc: errc}:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return n.stopErr()
	}
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, raft.ErrProposalDropped) {
			return fmt.Errorf("core: propose conf change: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return n.stopErr()
	}
}

// SetPeerAddr points the transport at a new address for a peer, as
// discovery (gossip) reports it. The raft configuration is unchanged.
func (n *Node) SetPeerAddr(id uint64, addr string) {
	if n.tr != nil && id != n.cfg.ID && addr != "" {
		n.tr.AddPeer(id, addr)
	}
}

// Progress returns, on the leader, each member's replication progress: the
// highest log index known to be stored on it. It returns grove.ErrNotLeader
// elsewhere.
func (n *Node) Progress(ctx context.Context) (map[uint64]uint64, error) {
	pc := make(chan map[uint64]uint64, 1)
	select {
	case n.confc <- confRequest{progress: pc}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.donec:
		return nil, n.stopErr()
	}
	select {
	case p := <-pc:
		if p == nil {
			return nil, grove.ErrNotLeader
		}
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.donec:
		return nil, n.stopErr()
	}
}

// TransferLeadership hands leadership over to the voter to, or with to 0
// to the other voter raft has heard from lately whose log is most caught
// up (ties: the lowest ID), and waits until another node leads, ctx ends
// or the node stops. Raft first brings the target's log up to date and
// then tells it to campaign at once, so the cluster has a leader again
// within a round trip or two instead of an election timeout; proposals
// arriving meanwhile are dropped and retried, and raft gives up a transfer
// that has not completed within an election timeout. It must be called on
// the leader (grove.ErrNotLeader otherwise) and returns the new leader's
// ID. With no other voter it returns grove.ErrBadArguments.
func (n *Node) TransferLeadership(ctx context.Context, to uint64) (uint64, error) {
	if !n.IsLeader() {
		return 0, grove.ErrNotLeader
	}
	if st := n.Status(); to != 0 && (to == n.cfg.ID || !slices.Contains(st.Voters, to)) {
		return 0, fmt.Errorf("core: %x is not another voter: %w", to, grove.ErrBadArguments)
	}
	picked := make(chan uint64, 1)
	select {
	case n.confc <- confRequest{transfer: picked, transferTo: to}:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.donec:
		return 0, n.stopErr()
	}
	select {
	case to = <-picked:
	case <-n.donec:
		return 0, n.stopErr()
	}
	if to == 0 {
		if !n.IsLeader() {
			return 0, grove.ErrNotLeader
		}
		return 0, fmt.Errorf("core: no other voter to hand leadership to: %w", grove.ErrBadArguments)
	}
	for {
		changed := n.leaderChanged()
		if lead := n.Leader(); lead != 0 && lead != n.cfg.ID {
			return lead, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, fmt.Errorf("core: leadership transfer to %x: %w", to, ctx.Err())
		case <-n.donec:
			return 0, n.stopErr()
		}
	}
}

// pickTransferee returns the voter to hand leadership to: among the other
// voters raft has heard from lately, the one whose log is most caught up
// (ties: the lowest ID); if none was heard from, the most caught up of all.
// 0 if there is no other voter. Loop only, on the leader.
func (n *Node) pickTransferee() uint64 {
	st := n.rn.Status()
	active, all := map[uint64]uint64{}, map[uint64]uint64{}
	for id, pr := range st.Progress {
		if pr.IsLearner {
			continue
		}
		all[id] = pr.Match
		if pr.RecentActive {
			active[id] = pr.Match
		}
	}
	if to := mostCaughtUp(slices.Collect(maps.Keys(active)), active, n.cfg.ID); to != 0 {
		return to
	}
	return mostCaughtUp(slices.Collect(maps.Keys(all)), all, n.cfg.ID)
}

// mostCaughtUp returns the voter other than self with the highest match
// index (ties: the lowest ID), or 0 if there is none.
func mostCaughtUp(voters []uint64, match map[uint64]uint64, self uint64) uint64 {
	var best uint64
	for _, id := range voters {
		if id == self {
			continue
		}
		if best == 0 || match[id] > match[best] || (match[id] == match[best] && id < best) {
			best = id
		}
	}
	return best
}
