package server

import (
	"context"
	"slices"
	"time"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/membership"
)

// catchUpSlack is how far behind the leader's last index a learner may be
// and still be promoted.
const catchUpSlack = 64

// reconcileLoop keeps raft's configuration and gossip in step, every 250ms
// and on every gossip change.
func (s *Server) reconcileLoop() {
	for {
		changed := s.gossip.Changed()
		s.reconcile()
		select {
		case <-s.stopc:
			return
		case <-s.node.Done():
			return
		case <-changed:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (s *Server) reconcile() {
	s.keepHTTPSessionAlive()
	members := s.gossip.Members()
	for _, m := range members {
		s.node.SetPeerAddr(m.RaftID, m.PeerAddr)
	}
	st := s.node.Status()
	inConf := slices.Contains(st.Voters, s.id) || slices.Contains(st.Learners, s.id)
	s.mu.Lock()
	was := s.wasMember
	if inConf {
		s.wasMember = true
	}
	// A member that was in the configuration and is no longer was removed
	// (by itself, an operator or cleanup): never add it back automatically.
	for id := range s.members {
		if !slices.Contains(st.Voters, id) && !slices.Contains(st.Learners, id) {
			s.removed[id] = true
			delete(s.members, id)
		}
	}
	for _, id := range append(slices.Clone(st.Voters), st.Learners...) {
		s.members[id] = true
	}
	s.mu.Unlock()
	if inConf && !s.gossip.LocalMeta().Bootstrapped {
		_ = s.gossip.UpdateMeta(func(m *membership.Meta) { m.Bootstrapped = true })
	}
	if was && !inConf && st.Leader != 0 {
		s.log.Warn("this node was removed from the cluster")
	}
	if st.Role != core.RoleLeader {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.addNewMembers(ctx, members, st)
	s.promoteLearners(ctx, members, st)
	s.cleanupDead(ctx, members, st)
}

// addNewMembers adds alive gossip members that raft does not know as
// learners.
func (s *Server) addNewMembers(ctx context.Context, members []membership.Member, st core.Status) {
	for _, m := range members {
		if m.State != membership.StateAlive || m.Leaving || m.RaftID == 0 ||
			slices.Contains(st.Voters, m.RaftID) || slices.Contains(st.Learners, m.RaftID) || s.wasRemoved(m.RaftID) {
			continue
		}
		s.log.Info("adding member as learner", "member", m.Name, "id", m.RaftID)
		if err := s.node.AddLearner(ctx, m.RaftID, m.PeerAddr); err != nil {
			s.log.Warn("add learner", "member", m.Name, "err", err)
		}
		return // one change at a time
	}
}

// promoteLearners promotes caught-up learners that announce the voter role.
func (s *Server) promoteLearners(ctx context.Context, members []membership.Member, st core.Status) {
	var candidates []membership.Member
	for _, m := range members {
		if m.State == membership.StateAlive && m.Role == membership.RoleVoter && slices.Contains(st.Learners, m.RaftID) {
			candidates = append(candidates, m)
		}
	}
	if len(candidates) == 0 {
		return
	}
	progress, err := s.node.Progress(ctx)
	if err != nil {
		return
	}
	last := progress[s.id]
	for _, m := range candidates {
		if progress[m.RaftID]+catchUpSlack >= last {
			s.log.Info("promoting learner to voter", "member", m.Name, "id", m.RaftID)
			if err := s.node.AddVoter(ctx, m.RaftID, m.PeerAddr); err != nil {
				s.log.Warn("promote", "member", m.Name, "err", err)
			}
			return
		}
	}
}

// cleanupDead removes voters gossip has reported dead for longer than
// CleanupDeadAfter, never below MinVoters (opt-in).
func (s *Server) cleanupDead(ctx context.Context, members []membership.Member, st core.Status) {
	if s.cfg.CleanupDeadAfter <= 0 {
		return
	}
	for _, m := range members {
		if m.RaftID == s.id || !slices.Contains(st.Voters, m.RaftID) {
			continue
		}
		gone := m.State == membership.StateDead || m.State == membership.StateLeft
		if !gone || time.Since(m.Since) < s.cfg.CleanupDeadAfter {
			continue
		}
		if len(st.Voters)-1 < s.cfg.MinVoters {
			s.log.Warn("dead voter kept: removing it would go below the minimum", "member", m.Name, "voters", len(st.Voters), "min", s.cfg.MinVoters)
			return
		}
		s.log.Info("removing dead voter", "member", m.Name, "dead_for", time.Since(m.Since))
		if err := s.removeMember(ctx, m.RaftID); err != nil {
			s.log.Warn("remove dead voter", "member", m.Name, "err", err)
		}
		return
	}
}

func (s *Server) removeMember(ctx context.Context, id uint64) error {
	s.mu.Lock()
	s.removed[id] = true
	s.mu.Unlock()
	return s.node.RemoveMember(ctx, id)
}

func (s *Server) wasRemoved(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removed[id]
}
