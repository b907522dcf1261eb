package core

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/fsm"
)

// loopState is owned by the loop goroutine.
type loopState struct {
	isLeader bool
	lead     uint64
	// heartbeatSent is when the oldest unanswered heartbeat went to each
	// peer, for the round-trip measurement (Observer.ObservePeerRTT).
	heartbeatSent map[uint64]time.Time
	readBatches   map[uint64]*readBatch
	nextReadID    uint64
	snapFiles     map[uint64]string // received snapshot files by index
	sending       map[uint64]bool   // peers we are streaming a snapshot to
	compactTo     uint64            // log entries to delete, queued for the writer
	compacting    bool              // a truncation is queued or being written
	// quickCampaignAt, if non-zero, is the tick at which this follower
	// campaigns because its leader, downLeader, is known to be down
	// (peerDown).
	quickCampaignAt uint64
	downLeader      uint64
	lastReap        time.Time
	reapUntil       time.Time // a reap proposal is in flight until then
	ticks           uint64
	snapEvents      []grove.Event      // watch events of an installed snapshot
	snapEventACLs   [][]grove.ACL      // the ACL of each of their nodes
	watched         []string           // paths watched when an install began
	snapSrc         *bbolt.DB          // the snapshot being installed, open until commit
	installing      bool               // the watch manager is locked for an install
	snapPins        map[uint64]snapPin // peer → log index its snapshot needs kept
	// leaderReadyIndex is the index of this leader's first entry; once it
	// is applied the leader knows every session (0: not yet known).
	leaderReadyIndex uint64
	// lastIndex is the index of the log's last entry as of the latest
	// Ready: what checkInvariants judges peers' messages against.
	lastIndex uint64
}

// proposal is a command for raft. errc (buffered) gets nil once raft
// accepted the entry, or the reason it was dropped.
type proposal struct {
	data []byte
	errc chan error
}

// confRequest asks the loop to campaign or to propose a conf change.
type confRequest struct {
	progress chan map[uint64]uint64
	campaign bool
	// transfer, if set, asks raft to hand leadership to transferTo, or
	// with transferTo 0 to the voter the loop picks (pickTransferee); the
	// voter chosen (0: none, or not leading) goes back on it.
	transfer   chan uint64
	transferTo uint64
	cc         pb.ConfChangeI
	errc       chan error
}

type readBatch struct {
	waiters []chan uint64
	tick    uint64
}

// A proposal batch is one raft message (forwarded whole by a follower), so
// it is bounded in count and in bytes, well below the transport's frame
// limit.
const (
	maxProposalBatch = 1024
	maxProposalBytes = 4 << 20
	maxInboundBatch  = 256 // raft messages stepped before one Ready
)

// run is the loop: the only goroutine that touches the raft RawNode. The
// order of work for each Ready is documented in doc.go.
func (n *Node) run() {
	defer close(n.donec)
	// The writers go before the loop reports done.
	defer n.stateWriter.stop()
	defer n.writer.stop()
	n.loopState = loopState{
		readBatches: map[uint64]*readBatch{},
		snapFiles:   map[uint64]string{},
		sending:     map[uint64]bool{},
		snapPins:    map[uint64]snapPin{},

		quickCampaignAt: n.restartCampaignAt,
	}
	n.loopState.lastIndex, _ = n.ms.LastIndex() // MemoryStorage never fails it
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		var err error
		select {
		case <-ticker.C:
			n.tick()
		case p := <-n.propc:
			n.propose(p)
		case m := <-n.recvc:
			n.step(m)
			n.drainInbound()
		case w := <-n.readc:
			n.readIndex(w)
		case r := <-n.confc:
			n.conf(r)
		case r := <-n.snapc:
			n.rn.ReportSnapshot(r.to, r.status)
			delete(n.loopState.sending, r.to)
		case in := <-n.snapInc:
			n.removeSnapFiles(^uint64(0)) // only the newest stream is kept
			n.loopState.snapFiles[in.index] = in.path
			if err := n.rn.Step(in.msg); err != nil {
				n.log.Warn("snapshot message refused by raft", "index", in.index, "err", err)
			}
		case <-n.writer.donec:
			err = n.appendsDone()
		case <-n.stateWriter.donec:
			err = n.flushesDone()
		case id := <-n.peerDownc:
			n.peerDown(id)
		case errc := <-n.flushc:
			n.queueFlush(errc, false)
		case rc := <-n.defragc:
			res := n.defrag()
			err = res.fatal
			rc <- res
		case <-n.stopc:
			// The log holds every applied entry; flushing spares the next
			// start replaying them. A failure here loses nothing.
			n.writer.stop()
			n.stateWriter.stop()
			err := n.appendsDone()
			if err == nil {
				err = n.flushesDone()
			}
			if err == nil {
				err = n.flushNow()
			}
			if err != nil {
				n.log.Warn("flush state at stop", "err", err)
			}
			n.fail(grove.ErrStopped)
			n.removeSnapFiles(^uint64(0))
			return
		}
		for err == nil && n.rn.HasReady() {
			err = n.handleReady()
		}
		if err != nil {
			n.log.Error("node stopped by a storage failure", "err", err)
			n.fail(err)
			return
		}
	}
}

func (n *Node) tick() {
	if n.flushDue() {
		n.queueFlush(nil, true) // no Ready queued the layer in time: the node is idle
	}
	n.rn.Tick()
	n.loopState.ticks++
	if at := n.loopState.quickCampaignAt; at != 0 && n.loopState.ticks >= at {
		n.quickCampaign()
	}
	if n.loopState.isLeader {
		n.expireSessions()
		n.reap()
	} else {
		n.flushTouches()
	}
	n.pruneReads()
}

// propose steps a batch of proposals into raft as one message: the leader
// stamps its time on every entry first. Raft holds on to entry data, so the
// stamp goes into a copy.
func (n *Node) propose(first proposal) {
	batch := []proposal{first}
	size := len(first.data)
	for len(batch) < maxProposalBatch && size < maxProposalBytes {
		select {
		case p := <-n.propc:
			batch = append(batch, p)
			size += len(p.data)
			continue
		default:
		}
		break
	}
	ents := make([]*pb.Entry, len(batch))
	for i, p := range batch {
		data := p.data
		if n.loopState.isLeader {
			data = append([]byte(nil), p.data...)
			command.Stamp(data, n.stampTime())
		}
		ents[i] = &pb.Entry{Data: data}
	}
	n.stats.proposals.Add(uint64(len(ents)))
	err := n.rn.Step(&pb.Message{Type: pb.MsgProp.Enum(), From: new(n.cfg.ID), Entries: ents})
	for _, p := range batch {
		p.errc <- err
	}
}

// step feeds an inbound raft message; the leader stamps forwarded proposals.
func (n *Node) step(m *pb.Message) {
	switch m.GetType() {
	case pb.MsgHeartbeatResp:
		if n.cfg.Observer != nil {
			n.heartbeatBack(m.GetFrom())
		}
	case pb.MsgUnreachable:
		n.rn.ReportUnreachable(m.GetFrom())
		return
	case pb.MsgSnap:
		// Snapshots arrive only through ReceiveSnapshot, with their data; a
		// bare one from the message path would have nothing to install.
		n.log.Warn("dropped a snapshot message that came without its stream", "from", m.GetFrom())
		return
	}
	if err := checkInvariants(m, n.loopState.lastIndex); err != nil {
		n.stats.peerMessagesRefused.Add(1)
		n.log.Warn("dropped a raft message", "err", err)
		return
	}
	if m.GetType() == pb.MsgProp {
		if !validProposal(m) {
			n.log.Warn("dropped a forwarded proposal with an undecodable conf change", "from", m.GetFrom())
			return
		}
		if n.loopState.isLeader {
			t := n.stampTime()
			for _, e := range m.Entries {
				if e.GetType() == pb.EntryNormal && len(e.Data) >= command.HeaderSize && e.Data[0] == command.Version {
					command.Stamp(e.Data, t)
				}
			}
		}
	}
	if err := n.rn.Step(m); err != nil && !errors.Is(err, raft.ErrProposalDropped) {
		n.log.Debug("step", "type", m.GetType().String(), "from", m.GetFrom(), "err", err)
	}
}

// drainInbound steps the messages already waiting (up to a bound) before
// the next Ready, so a burst of appends, acks and forwarded proposals shares
// one transaction and one fsync.
func (n *Node) drainInbound() {
	for range maxInboundBatch {
		select {
		case m := <-n.recvc:
			n.step(m)
		case p := <-n.propc:
			n.propose(p)
		default:
			return
		}
	}
}

// stampTime is the leader's clock in ms, never going backwards.
func (n *Node) stampTime() int64 {
	t := now().UnixMilli()
	if t < n.lastStamp {
		t = n.lastStamp
	}
	n.lastStamp = t
	return t
}

func (n *Node) conf(r confRequest) {
	var err error
	switch {
	case r.progress != nil:
		var p map[uint64]uint64
		if n.loopState.isLeader {
			st := n.rn.Status()
			p = make(map[uint64]uint64, len(st.Progress))
			for id, pr := range st.Progress {
				p[id] = pr.Match
			}
		}
		r.progress <- p
		return
	case r.campaign:
		err = n.rn.Campaign()
	case r.transfer != nil:
		to := r.transferTo
		if !n.loopState.isLeader {
			to = 0
		} else if to == 0 {
			to = n.pickTransferee()
		}
		if to != 0 {
			n.rn.TransferLeader(to)
		}
		r.transfer <- to
		return
	case r.cc != nil:
		err = n.rn.ProposeConfChange(r.cc)
	}
	if r.errc != nil {
		r.errc <- err
	}
}

// handleReady handles one Ready (raft runs with AsyncStorageWrites):
//
//  1. messages to peers are sent at once: the leader's own disk write
//     overlaps the followers' (thesis §10.2.1), and everything that must
//     wait for durability travels as a response inside an append;
//  2. committed entries (MsgStorageApply; raft hands out only entries that
//     are durable here) are applied to the in-memory state layers, their
//     watch events delivered and then the waiting requests answered; the
//     apply responses go back to raft;
//  3. appends (MsgStorageAppend: entries, hard state) are queued for the log
//     writer, which makes them durable in order and in batches; when a
//     batch is durable the loop records it in the in-memory log and
//     delivers the responses (appendsDone). A snapshot is installed here,
//     after the writer has finished what was queued before it;
//  4. a log truncation or a state layer due for bbolt is queued behind
//     them.
//
// The loop never waits for the disk: ticks, heartbeats, proposals and
// applies go on while the writer syncs.
func (n *Node) handleReady() error {
	rd := n.rn.Ready()
	n.updateSoftState(rd.SoftState)
	var peers, appends, applies []*pb.Message
	for _, m := range rd.Messages {
		switch m.GetTo() {
		case raft.LocalAppendThread:
			appends = append(appends, m)
		case raft.LocalApplyThread:
			applies = append(applies, m)
		default:
			peers = append(peers, m)
		}
	}
	n.send(peers)
	for _, m := range applies {
		if err := n.applyAndPublish(m.Entries); err != nil {
			return err
		}
		n.deliver(m.Responses)
		if n.writer.inFlight > 0 {
			crashPoint("answered-before-log-commit")
		}
	}
	for _, m := range appends {
		// An append replaces the log after its first entry's predecessor,
		// a snapshot replaces all of it: the log now ends at the last
		// entry, or at the snapshot.
		if ents := m.GetEntries(); len(ents) > 0 {
			n.loopState.lastIndex = ents[len(ents)-1].GetIndex()
		} else if !raft.IsEmptySnap(m.Snapshot) {
			n.loopState.lastIndex = m.Snapshot.GetMetadata().GetIndex()
		}
		if !raft.IsEmptySnap(m.Snapshot) {
			if err := n.installInline(m); err != nil {
				return err
			}
			continue
		}
		if n.nothingToPersist(m) {
			if err := n.stableAppend(m); err != nil {
				return err
			}
			continue
		}
		n.writer.enqueue(&appendJob{m: m})
	}
	n.queueMaintenance()
	n.updateStatus(rd.HardState)
	// A received snapshot raft did not take (the log caught up first) is
	// obsolete once applied passes it.
	n.removeSnapFiles(n.applied.Load())
	n.answerReads(rd.ReadStates)
	if n.campaignAt != 0 && n.applied.Load() >= n.campaignAt {
		// raft counts the configuration as applied once the apply
		// response is stepped (above).
		n.campaignAt = 0
		if err := n.rn.Campaign(); err != nil {
			n.log.Warn("campaign", "err", err)
		}
	}
	n.maybeCompact()
	return nil
}

// queueMaintenance queues a due log truncation and a state layer due for
// bbolt behind the appends (loop only).
func (n *Node) queueMaintenance() {
	if to := n.loopState.compactTo; to > 0 && !n.loopState.compacting {
		n.loopState.compacting = true
		n.writer.enqueue(&appendJob{compactTo: to})
	}
	if n.flushDue() {
		n.queueFlush(nil, false)
	}
}

// queueFlush freezes the newest state layer and queues it for bbolt; done,
// if set (buffered), gets the result once it and everything queued before
// it are durable.
func (n *Node) queueFlush(done chan error, idle bool) {
	j := &appendJob{done: done, idle: idle}
	if !n.layers[len(n.layers)-1].Empty() {
		j.frozen, j.frozenIndex = n.freeze()
		if idle {
			crashPoint("idle-frozen")
		} else {
			crashPoint("frozen")
		}
	}
	n.stateWriter.enqueue(j)
}

// installInline installs a received snapshot carried by an append, once
// the writer has made everything queued before it durable (loop only).
func (n *Node) installInline(m *pb.Message) error {
	if err := n.waitWriter(); err != nil {
		return err
	}
	snap := m.Snapshot
	// Lock order: the watch manager, then the state. Readers wait for the
	// install; they see the old state or the new, never a mix.
	n.loopState.watched = n.watches.beginInstall()
	n.loopState.installing = true
	n.stateMu.Lock()
	err := n.data().Update(func(tx *bbolt.Tx) error { return n.installSnapshot(tx, snap) })
	idx := snap.GetMetadata().GetIndex()
	if err == nil {
		n.discardLayersLocked()
		n.state.durable = idx
	}
	n.stateMu.Unlock()
	if src := n.loopState.snapSrc; src != nil {
		_ = src.Close()
		n.loopState.snapSrc = nil
	}
	events, acls := n.loopState.snapEvents, n.loopState.snapEventACLs
	if err != nil {
		events = nil // nothing was installed
	}
	n.loopState.installing, n.loopState.snapEvents, n.loopState.snapEventACLs, n.loopState.watched = false, nil, nil, nil
	n.watches.endInstall(events, acls)
	if err != nil {
		return fmt.Errorf("core: install snapshot: %w", err)
	}
	// The log restarts after the snapshot only once the state file holds
	// it: a crash in between leaves the snapshot's state beside the old
	// log, whose tail Start then drops (loadRaftState).
	crashPoint("snapshot-installed")
	if err := n.resetLog(m); err != nil {
		return err
	}
	if err := n.ms.ApplySnapshot(snap); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		return fmt.Errorf("core: apply snapshot to memory log: %w", err)
	}
	n.removeSnapFiles(idx)
	n.stats.snapsIn.Add(1)
	n.stats.readies.Add(1)
	n.publishSnapshot(idx)
	return n.stableAppend(m)
}

// applyAndPublish applies committed entries to the state's newest layer
// and then publishes them: watch events first, answers second.
func (n *Node) applyAndPublish(ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	var outcomes []*fsm.Outcome
	start := time.Now()
	err := n.applyState(func(tx fsm.Tx) error {
		for _, e := range ents {
			o, err := n.applyEntry(tx, e)
			if err != nil {
				return fmt.Errorf("core: apply entry %d: %w", e.GetIndex(), err)
			}
			if o != nil {
				outcomes = append(outcomes, o)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	crashPoint("applied")
	n.stats.applied.Add(uint64(len(ents)))
	n.updateStatus(nil) // a conf change shows in Status before its index does
	n.applied.Store(ents[len(ents)-1].GetIndex())
	n.publish(outcomes)
	if o := n.cfg.Observer; o != nil {
		o.ObserveApply(time.Since(start), len(ents))
	}
	return nil
}

// applyEntry applies one committed entry through the state view.
func (n *Node) applyEntry(tx fsm.Tx, e *pb.Entry) (*fsm.Outcome, error) {
	switch e.GetType() {
	case pb.EntryNormal:
		if len(e.Data) == 0 {
			return nil, fsm.SetApplied(tx, e.GetIndex(), e.GetTerm())
		}
		o, err := fsm.Apply(tx, e.GetIndex(), e.GetTerm(), e.Data)
		if o != nil {
			o.Index = e.GetIndex()
		}
		return o, err
	case pb.EntryConfChange, pb.EntryConfChangeV2:
		cc, err := decodeConfChange(e)
		if err != nil {
			n.log.Error("undecodable conf change skipped", "index", e.GetIndex(), "err", err)
			return nil, fsm.SetApplied(tx, e.GetIndex(), e.GetTerm())
		}
		if removesAllVoters(n.confState, cc) {
			// Two removals proposed against the same view (say, the last
			// two voters leaving at once) can both commit; raft panics on
			// a configuration without voters. Every node skips the same
			// entry at the same point, so they stay in step.
			n.log.Error("conf change would remove every voter; skipped", "index", e.GetIndex())
			return nil, fsm.SetApplied(tx, e.GetIndex(), e.GetTerm())
		}
		n.confState = n.rn.ApplyConfChange(cc)
		// The conf state goes with the applied state (flushed together),
		// so a restart from the durable applied index replays the change.
		if err := saveConfState(tx, n.confState); err != nil {
			return nil, err
		}
		if err := n.applyPeers(tx, cc); err != nil {
			return nil, err
		}
		if err := fsm.SetConfigData(tx, configData(tx, n.confState, e.GetIndex())); err != nil {
			return nil, err
		}
		return nil, fsm.SetApplied(tx, e.GetIndex(), e.GetTerm())
	}
	return nil, fsm.SetApplied(tx, e.GetIndex(), e.GetTerm())
}

// publish makes applied outcomes visible to waiters, in the order events
// first, answers second.
func (n *Node) publish(outcomes []*fsm.Outcome) {
	for _, o := range outcomes {
		n.watches.dispatch(o.Events, o.EventACLs)
		if o.Created != nil {
			n.sessions.add(o.Created.ID, time.Duration(o.Created.TimeoutMs)*time.Millisecond)
		}
		for _, id := range o.Closed {
			n.sessions.remove(id)
			n.watches.removeSession(id)
		}
		if o.Kind == command.KindExpire {
			n.stats.expired.Add(uint64(len(o.Closed)))
		}
	}
	n.dispatched.set(n.applied.Load())
	n.maybeLeaderReady()
	for _, o := range outcomes {
		n.waits.trigger(o)
	}
}

// publishSnapshot makes an installed snapshot visible: the applied index
// jumps to it and the session table is reloaded from it.
func (n *Node) publishSnapshot(index uint64) {
	n.applied.Store(index)
	if err := n.sessions.reload(n); err != nil {
		n.log.Error("reload sessions after a snapshot install", "err", err)
	}
	n.dropClosedSessions()
	n.dispatched.set(index)
	n.maybeLeaderReady()
}

// maybeCompact truncates the in-memory log behind the applied index once it
// holds more than SnapshotEntries; the on-disk log follows in the next
// Readys. It never truncates past a snapshot a peer is still catching up
// from, or that peer would need another snapshot at once.
func (n *Node) maybeCompact() {
	// Only behind what bbolt holds: a restart replays the log from there.
	applied := n.state.durable
	first, _ := n.ms.FirstIndex()
	if applied < first || applied-first < n.cfg.SnapshotEntries {
		return
	}
	if pin := n.snapshotPin(); pin > 0 && pin < applied {
		applied = pin
		if applied < first || applied-first < n.cfg.SnapshotEntries {
			return
		}
	}
	if _, err := n.ms.CreateSnapshot(applied, n.confState, nil); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		n.log.Warn("create snapshot point", "index", applied, "err", err)
		return
	}
	to := applied - n.cfg.CatchUpEntries
	if err := n.ms.Compact(to); err != nil && !errors.Is(err, raft.ErrCompacted) {
		n.log.Warn("compact log", "index", to, "err", err)
		return
	}
	n.loopState.compactTo = to
}

// snapshotPin returns the lowest index a peer catching up from a snapshot
// still needs the log from (0: none), forgetting peers that caught up or
// whose pin is too old.
func (n *Node) snapshotPin() uint64 {
	pins := n.loopState.snapPins
	if len(pins) == 0 {
		return 0
	}
	progress := n.rn.Status().Progress
	var low uint64
	for peer, pin := range pins {
		pr, ok := progress[peer]
		if !ok || pr.Match >= pin.index || time.Since(pin.at) > snapshotPinTTL {
			delete(pins, peer)
			continue
		}
		if low == 0 || pin.index < low {
			low = pin.index
		}
	}
	return low
}

// snapshotPinTTL bounds how long a snapshot in flight holds back log
// truncation.
const snapshotPinTTL = 10 * time.Minute

type snapPin struct {
	index uint64
	at    time.Time
}

func decodeConfChange(e *pb.Entry) (pb.ConfChangeI, error) {
	if e.GetType() == pb.EntryConfChange {
		cc := &pb.ConfChange{}
		if err := unmarshal(e.Data, cc); err != nil {
			return nil, err
		}
		return cc, nil
	}
	cc := &pb.ConfChangeV2{}
	if err := unmarshal(e.Data, cc); err != nil {
		return nil, err
	}
	return cc, nil
}

// applyPeers records the peers added or removed by a conf change and tells
// the transport. The address of an added peer travels in the change's
// context.
func (n *Node) applyPeers(tx fsm.Tx, cc pb.ConfChangeI) error {
	v2 := cc.AsV2()
	for _, c := range v2.GetChanges() {
		id := c.GetNodeId()
		switch c.GetType() {
		case pb.ConfChangeAddNode, pb.ConfChangeAddLearnerNode:
			addr := string(v2.GetContext())
			if addr == "" {
				continue
			}
			if err := savePeer(tx, id, addr); err != nil {
				return err
			}
			if n.tr != nil && id != n.cfg.ID {
				n.tr.AddPeer(id, addr)
			}
		case pb.ConfChangeRemoveNode:
			if err := savePeer(tx, id, ""); err != nil {
				return err
			}
			if n.tr != nil && id != n.cfg.ID {
				n.tr.RemovePeer(id)
			}
		}
	}
	return nil
}

// validProposal checks the conf changes in a forwarded proposal: raft's
// leader panics on one it cannot decode, and a peer must never be able to
// crash it.
func validProposal(m *pb.Message) bool {
	for _, e := range m.Entries {
		if e.GetType() == pb.EntryConfChange || e.GetType() == pb.EntryConfChangeV2 {
			if _, err := decodeConfChange(e); err != nil {
				return false
			}
		}
	}
	return true
}

// removesAllVoters reports whether applying cc to cs would leave no voter.
func removesAllVoters(cs *pb.ConfState, cc pb.ConfChangeI) bool {
	voters := map[uint64]bool{}
	for _, id := range cs.GetVoters() {
		voters[id] = true
	}
	if len(voters) == 0 {
		return false // not yet bootstrapped: the bootstrap adds them
	}
	for _, ch := range cc.AsV2().GetChanges() {
		switch ch.GetType() {
		case pb.ConfChangeRemoveNode, pb.ConfChangeAddLearnerNode:
			delete(voters, ch.GetNodeId())
		case pb.ConfChangeAddNode:
			voters[ch.GetNodeId()] = true
		}
	}
	return len(voters) == 0
}

// quickCampaignSpacing is the ticks between the campaigns of the surviving
// voters after their leader went down, in order of raft ID, so the first
// usually wins before the next one starts and the vote is not split.
const quickCampaignSpacing = 2

// campaignRank is id's place among voters in order of raft ID, or -1 if
// it is not one of them (a learner does not campaign).
func campaignRank(voters []uint64, id uint64) int {
	return slices.Index(slices.Sorted(slices.Values(voters)), id)
}

// startCampaignTick is the tick at which voter id of voters campaigns
// after a restart: 2, 4, 6, … in order of raft ID; 0 (never) for a
// single voter, which elects itself at once anyway, and for a non-voter.
func startCampaignTick(voters []uint64, id uint64) uint64 {
	rank := campaignRank(voters, id)
	if len(voters) < 2 || rank < 0 {
		return 0
	}
	return 2 + uint64(rank)*quickCampaignSpacing
}

// peerDown handles the transport's word that peer id's process is gone. If
// it is this follower's leader, the follower forgets it (with PreVote and
// CheckQuorum a follower otherwise refuses votes for an election timeout
// after it last heard from a leader) and campaigns soon, at a tick set by
// its rank among the surviving voters. Every survivor hears of the death
// at about the same time, so the new leader is elected about a tick
// later instead of an election timeout later. Elections are always safe;
// a wrong report costs one election at most, and a leader heard from
// again is followed again.
func (n *Node) peerDown(id uint64) {
	ls := &n.loopState
	if ls.isLeader || id != ls.lead {
		return
	}
	survivors := slices.DeleteFunc(slices.Clone(n.confState.GetVoters()), func(v uint64) bool { return v == id })
	rank := campaignRank(survivors, n.cfg.ID)
	if rank < 0 {
		return // a learner does not campaign
	}
	if err := n.rn.ForgetLeader(); err != nil {
		n.log.Warn("forget a leader that went down", "leader", id, "err", err)
		return
	}
	n.log.Info("leader went down; campaigning soon", "leader", id, "rank", rank)
	ls.quickCampaignAt = ls.ticks + 1 + uint64(rank)*quickCampaignSpacing
	ls.downLeader = id
}

// quickCampaign runs the campaign peerDown scheduled, unless a leader has
// been elected since. Following the leader reported down does not count:
// the loop takes messages and reports in no fixed order, so a heartbeat
// that leader sent before it went down may be handled after the report and
// bring it back; without this the followers would wait out the whole
// election timeout, each refusing the others' pre-votes for a leader that
// is gone.
func (n *Node) quickCampaign() {
	ls := &n.loopState
	down := ls.downLeader
	ls.quickCampaignAt, ls.downLeader = 0, 0
	if ls.isLeader || (ls.lead != 0 && ls.lead != down) {
		return
	}
	if ls.lead != 0 {
		if err := n.rn.ForgetLeader(); err != nil {
			n.log.Warn("forget a leader that went down", "leader", down, "err", err)
			return
		}
	}
	if err := n.rn.Campaign(); err != nil {
		n.log.Warn("campaign after the leader went down", "err", err)
	}
}
