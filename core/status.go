package core

import (
	"slices"
	"sync/atomic"

	"go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/grovekit/grove/internal/fsm"
)

// Role is a node's raft role.
type Role string

// Roles.
const (
	RoleLeader       Role = "leader"
	RoleFollower     Role = "follower"
	RoleCandidate    Role = "candidate"
	RolePreCandidate Role = "precandidate"
	RoleLearner      Role = "learner"
)

// Status is a snapshot of a node's raft state.
type Status struct {
	ID       uint64   // this node
	Role     Role     // its raft role
	Leader   uint64   // the leader it knows of, 0 if none
	Term     uint64   // current term
	Commit   uint64   // commit index
	Applied  uint64   // applied index (zxid of the newest readable state)
	Voters   []uint64 // voters of the current configuration
	Learners []uint64 // learners of the current configuration
}

// Status returns the node's current raft status. It never blocks on the
// raft loop.
func (n *Node) Status() Status {
	n.mu.RLock()
	defer n.mu.RUnlock()
	s := n.status
	s.Voters = slices.Clone(s.Voters)
	s.Learners = slices.Clone(s.Learners)
	s.Applied = n.applied.Load()
	return s
}

// Leader returns the raft ID of the current leader as this node knows it,
// or 0 if there is none.
func (n *Node) Leader() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.status.Leader
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.status.Role == RoleLeader
}

// updateSoftState reacts to leader and role changes (loop goroutine).
func (n *Node) updateSoftState(ss *raft.SoftState) {
	if ss == nil {
		return
	}
	wasLeader := n.loopState.isLeader
	n.loopState.isLeader = ss.RaftState == raft.StateLeader
	leaderChanged := ss.Lead != n.loopState.lead
	n.loopState.lead = ss.Lead
	switch {
	case n.loopState.isLeader && !wasLeader:
		n.log.Info("became leader", "term", n.rn.BasicStatus().GetTerm())
		n.becomeLeader()
	case !n.loopState.isLeader && wasLeader:
		n.log.Info("lost leadership", "new_leader", ss.Lead)
		n.sessions.stepDown()
	}
	n.mu.Lock()
	n.status.Leader = ss.Lead
	n.status.Role = n.roleOf(ss.RaftState)
	if leaderChanged {
		close(n.leaderChange)
		n.leaderChange = make(chan struct{})
	}
	n.mu.Unlock()
	if leaderChanged {
		if ss.Lead != 0 { // an election passes through "no leader": count it once
			n.stats.leaderChanges.Add(1)
		}
		if o := n.cfg.Observer; o != nil {
			o.ObserveLeaderChange(ss.Lead)
		}
	}
}

// becomeLeader starts the leader's duties. Session deadlines are not
// known until this leader has applied everything committed before its term
// (its own first entry): until then KeepAlive waits, and no session expires.
func (n *Node) becomeLeader() {
	n.sessions.startLeading()
	n.loopState.leaderReadyIndex = 0
	n.loopState.reapUntil = now()
}

// maybeLeaderReady finishes becoming leader once the leader's first entry is
// applied: every session gets a fresh full timeout (loop goroutine).
func (n *Node) maybeLeaderReady() {
	ls := &n.loopState
	if !ls.isLeader || n.sessions.isReady() {
		return
	}
	if ls.leaderReadyIndex == 0 {
		last, err := n.ms.LastIndex()
		if err != nil {
			return
		}
		ls.leaderReadyIndex = last
	}
	if n.applied.Load() < ls.leaderReadyIndex {
		return
	}
	list, err := loadSessions(n)
	if err != nil {
		n.log.Error("load sessions", "err", err)
		return
	}
	n.sessions.becomeReady(list, now())
}

func (n *Node) roleOf(s raft.StateType) Role {
	switch s {
	case raft.StateLeader:
		return RoleLeader
	case raft.StateCandidate:
		return RoleCandidate
	case raft.StatePreCandidate:
		return RolePreCandidate
	}
	if slices.Contains(n.confState.GetLearners(), n.cfg.ID) {
		return RoleLearner
	}
	return RoleFollower
}

// updateStatus refreshes the published status after a Ready (loop).
func (n *Node) updateStatus(hs *pb.HardState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if hs != nil && !raft.IsEmptyHardState(hs) {
		n.status.Term = hs.GetTerm()
		n.status.Commit = hs.GetCommit()
	}
	// Shared, not copied: a ConfState is replaced on every change, never
	// modified, and Status copies the slices it hands out.
	n.status.Voters = n.confState.GetVoters()
	n.status.Learners = n.confState.GetLearners()
	if n.status.Role == RoleFollower || n.status.Role == RoleLearner {
		n.status.Role = n.roleOf(raft.StateFollower)
	}
}

// counters are the node's running totals.
type counters struct {
	proposals atomic.Uint64
	readies   atomic.Uint64
	appended  atomic.Uint64
	applied   atomic.Uint64
	snapsSent atomic.Uint64
	snapsIn   atomic.Uint64
	// leaderChanges counts the leaders this node learned of (a change to
	// "no leader" is not one).
	leaderChanges atomic.Uint64
	// proposalsDropped counts proposals raft refused (no leader, or a
	// leadership transfer under way); their writes are proposed again.
	proposalsDropped atomic.Uint64
	// expired counts sessions closed by expiry, applied here.
	expired atomic.Uint64
	// peerMessagesRefused counts peer messages dropped by the checks of
	// peercheck.go.
	peerMessagesRefused atomic.Uint64
}

// Stats are running totals and current sizes, for metrics.
type Stats struct {
	Proposals      uint64 // entries proposed through this node
	Readies        uint64 // Ready transactions committed (fsyncs)
	EntriesWritten uint64 // log entries persisted
	EntriesApplied uint64 // log entries applied
	SnapshotsSent  uint64 // snapshots streamed to followers
	// SnapshotsInstalled counts snapshots this node caught up from.
	SnapshotsInstalled uint64
	// PeerMessagesRefused counts peer messages dropped because they claimed
	// another sender, carried a type only a node itself creates, or would
	// have broken raft's invariants (out-of-range commit or index, an
	// inconsistent batch of entries).
	PeerMessagesRefused uint64
	// CorruptRecords counts znode records found damaged (checksum
	// mismatch) by reads and scrubs, in this process.
	CorruptRecords uint64
	// LeaderChanges counts the leaders this node learned of: one per
	// election it saw, its first leader included.
	LeaderChanges uint64
	// ProposalsDropped counts proposals raft refused (no leader, or a
	// leadership transfer under way); their writes were proposed again.
	ProposalsDropped uint64
	// ProposalsPending counts writes proposed through this node and not
	// yet answered.
	ProposalsPending int
	// SessionsExpired counts sessions closed by expiry (applied here).
	SessionsExpired uint64
	// StateFileBytes is the size of the state file (grove.db).
	StateFileBytes int64
	Sessions       int // open sessions
	Znodes         int // znodes in the tree
	Watches        int // watches registered on this node
}

// Stats returns running totals and, by reading the state, the current
// numbers of sessions and znodes (cost grows with the tree size).
func (n *Node) Stats() (Stats, error) {
	s := Stats{
		Proposals:           n.stats.proposals.Load(),
		Readies:             n.stats.readies.Load(),
		EntriesWritten:      n.stats.appended.Load(),
		EntriesApplied:      n.stats.applied.Load(),
		SnapshotsSent:       n.stats.snapsSent.Load(),
		SnapshotsInstalled:  n.stats.snapsIn.Load(),
		PeerMessagesRefused: n.stats.peerMessagesRefused.Load(),
		CorruptRecords:      fsm.CorruptRecords(),
		Watches:             n.watches.size(),
		LeaderChanges:       n.stats.leaderChanges.Load(),
		ProposalsDropped:    n.stats.proposalsDropped.Load(),
		ProposalsPending:    n.waits.size(),
		SessionsExpired:     n.stats.expired.Load(),
	}
	_ = n.data().View(func(tx *bbolt.Tx) error { s.StateFileBytes = tx.Size(); return nil })
	err := n.readState(func(tx fsm.Tx) error {
		var err error
		s.Sessions, s.Znodes, err = fsm.Counts(tx)
		return err
	})
	return s, err
}
