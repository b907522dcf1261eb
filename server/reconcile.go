package server

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/audit"
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
		s.mu.Lock()
		s.joins.awaiting = nil // only a leader admits, and lists who waits
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.addNewMembers(ctx, members, st)
	s.promoteLearners(ctx, members, st)
	s.cleanupDead(ctx, members, st)
}

// joinState is the leader's admission bookkeeping: gossip only proposes
// members; the leader lets one into the raft configuration once it has
// proved itself on the peer port (Verify), and promotes it once it has
// acknowledged entries and caught up.
type joinState struct {
	// approved holds the names an operator approved (JoinManual), until
	// they are in the configuration. The leader's memory only: after a
	// change of leader, approve again. Guarded by Server.mu, as is
	// awaiting: the members the last round left waiting for approval.
	approved map[string]bool
	awaiting []string
	// retryAt holds members whose proof failed, until their next try.
	retryAt map[uint64]time.Time
	// silentSince is when this leader first saw a learner that has not
	// acknowledged any entry; reset once it does.
	silentSince map[uint64]time.Time
}

// verifyRetry is how long the leader waits before it asks a member whose
// proof failed again.
const verifyRetry = 30 * time.Second

// addNewMembers adds, as a learner, one alive gossip member that raft does
// not know, once it proved on the peer port that it belongs (cluster key or
// certificate), while there are fewer than MaxLearners learners.
func (s *Server) addNewMembers(ctx context.Context, members []membership.Member, st core.Status) {
	j := &s.joins
	if j.retryAt == nil {
		j.retryAt = map[uint64]time.Time{}
	}
	var awaiting []string
	defer func() {
		s.mu.Lock()
		j.awaiting = awaiting
		s.mu.Unlock()
	}()
	for _, m := range members {
		if m.State != membership.StateAlive || m.Leaving || m.RaftID == 0 ||
			slices.Contains(st.Voters, m.RaftID) || slices.Contains(st.Learners, m.RaftID) || s.wasRemoved(m.RaftID) ||
			time.Now().Before(j.retryAt[m.RaftID]) {
			continue
		}
		if s.cfg.JoinPolicy == JoinManual && !s.isApproved(m.Name) {
			awaiting = append(awaiting, m.Name)
			continue
		}
		if len(st.Learners) >= s.cfg.MaxLearners {
			s.log.Warn("not adding member: the cluster has the most learners allowed", "member", m.Name, "learners", len(st.Learners), "max", s.cfg.MaxLearners)
			return
		}
		if err := s.tr.Verify(ctx, m.RaftID, m.PeerAddr); err != nil {
			j.retryAt[m.RaftID] = time.Now().Add(verifyRetry)
			s.joinsRefused.Add(1)
			s.log.Warn("not adding member: it did not prove itself on the peer port", "member", m.Name, "id", m.RaftID, "addr", m.PeerAddr, "err", err)
			continue
		}
		delete(j.retryAt, m.RaftID)
		s.log.Info("adding member as learner", "member", m.Name, "id", m.RaftID)
		err := s.node.AddLearner(ctx, m.RaftID, m.PeerAddr)
		if err != nil {
			// The approval stays: the next round tries again (a lost
			// leadership or a pending change must not use it up).
			s.log.Warn("add learner", "member", m.Name, "err", err)
		} else {
			s.unapprove(m.Name)
		}
		s.auditLeader("add-learner", m.Name, m.RaftID, err)
		return // one change at a time
	}
}

// promoteLearners promotes a learner that announces the voter role once it
// has acknowledged entries and is within catchUpSlack of the leader's last
// index. A learner that never acknowledged anything (Match 0) is never
// promoted, however short the log: it may not be able to speak raft at all.
// It also removes learners silent for longer than LearnerTimeout.
func (s *Server) promoteLearners(ctx context.Context, members []membership.Member, st core.Status) {
	if len(st.Learners) == 0 {
		return
	}
	progress, err := s.node.Progress(ctx)
	if err != nil {
		return
	}
	if s.removeSilentLearners(ctx, st, progress) {
		return // one change at a time
	}
	last := progress[s.id]
	for _, m := range members {
		if m.State != membership.StateAlive || m.Role != membership.RoleVoter || !slices.Contains(st.Learners, m.RaftID) {
			continue
		}
		match := progress[m.RaftID]
		if match == 0 || match+catchUpSlack < last {
			continue
		}
		s.log.Info("promoting learner to voter", "member", m.Name, "id", m.RaftID, "match", match, "last", last)
		err := s.node.AddVoter(ctx, m.RaftID, m.PeerAddr)
		if err != nil {
			s.log.Warn("promote", "member", m.Name, "err", err)
		}
		s.auditLeader("promote", m.Name, m.RaftID, err)
		return
	}
}

// removeSilentLearners removes one learner that has acknowledged nothing
// for LearnerTimeout (as this leader saw it), and reports whether it did.
func (s *Server) removeSilentLearners(ctx context.Context, st core.Status, progress map[uint64]uint64) bool {
	j := &s.joins
	if j.silentSince == nil {
		j.silentSince = map[uint64]time.Time{}
	}
	for id := range j.silentSince {
		if !slices.Contains(st.Learners, id) || progress[id] > 0 {
			delete(j.silentSince, id)
		}
	}
	for _, id := range st.Learners {
		if progress[id] > 0 {
			continue
		}
		since, ok := j.silentSince[id]
		if !ok {
			j.silentSince[id] = time.Now()
			continue
		}
		if time.Since(since) < s.cfg.LearnerTimeout {
			continue
		}
		s.log.Warn("removing a learner that acknowledged nothing", "id", id, "silent_for", time.Since(since).Round(time.Second))
		err := s.removeMember(ctx, id)
		if err != nil {
			s.log.Warn("remove silent learner", "id", id, "err", err)
		}
		s.auditLeader("remove-silent-learner", "", id, err)
		delete(j.silentSince, id)
		return true
	}
	return false
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
		err := s.removeMember(ctx, m.RaftID)
		if err != nil {
			s.log.Warn("remove dead voter", "member", m.Name, "err", err)
		}
		s.auditLeader("remove-dead-voter", m.Name, m.RaftID, err)
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

// auditLeader records a membership change the leader made on its own.
func (s *Server) auditLeader(op, name string, id uint64, err error) {
	s.auditRecord(audit.Record{Kind: "member", Op: op, Detail: strings.TrimSpace(name + " " + idString(id)), Port: "leader"}, err)
}

// auditRecord writes rec to the audit log, if there is one, with err (or
// "ok") as its result.
func (s *Server) auditRecord(rec audit.Record, err error) {
	if s.audit == nil {
		return
	}
	rec.Result = "ok"
	if err != nil {
		rec.Result = err.Error()
	}
	s.audit.Write(rec)
}

// approve lets the member named name join under JoinManual.
func (s *Server) approve(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.joins.approved == nil {
		s.joins.approved = map[string]bool{}
	}
	s.joins.approved[name] = true
}

func (s *Server) isApproved(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joins.approved[name]
}

func (s *Server) unapprove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.joins.approved, name)
}

// awaitingApproval lists the gossip members the leader's last round left
// waiting for an operator's approval (JoinManual).
func (s *Server) awaitingApproval() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.joins.awaiting)
}
