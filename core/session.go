package core

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/fsm"
)

// SessionInfo describes an open session.
type SessionInfo struct {
	ID       uint64
	Password []byte
	Timeout  time.Duration
}

// CreateSession opens a session whose timeout is the requested one clamped
// to [MinSessionTimeout, MaxSessionTimeout]. The session id is the zxid of
// its creation; the password (random) lets a client re-attach to it on
// another server. It blocks until the session is committed and applied here,
// holding through an election until ctx ends.
func (n *Node) CreateSession(ctx context.Context, timeout time.Duration) (SessionInfo, error) {
	timeout = min(max(timeout, n.cfg.MinSessionTimeout), n.cfg.MaxSessionTimeout)
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	data, err := command.Encode(&command.CreateSession{TimeoutMs: timeout.Milliseconds(), Password: pw})
	if err != nil {
		return SessionInfo{}, err
	}
	o, err := n.proposeAndWait(ctx, waitKey{token: string(pw)}, data)
	if err != nil {
		return SessionInfo{}, err
	}
	return SessionInfo{ID: o.Created.ID, Password: pw, Timeout: timeout}, nil
}

// Session returns the replicated record of a session, as this node has
// applied it; ok is false if it does not exist (never created, closed or
// expired).
func (n *Node) SessionInfo(id uint64) (info SessionInfo, ok bool, err error) {
	err = n.readState(func(tx fsm.Tx) error {
		s, found, err := fsm.SessionByID(tx, id)
		if found {
			info = SessionInfo{ID: s.ID, Password: s.Password, Timeout: time.Duration(s.TimeoutMs) * time.Millisecond}
		}
		ok = found
		return err
	})
	return info, ok, err
}

// Touch records that a session was heard from. It never blocks: followers
// batch touches to the leader every tick.
func (n *Node) Touch(session uint64) {
	n.sessions.touch(session, now())
}

// KeepAlive refreshes a session's timeout at the leader and returns how long
// the session now has left before the leader may expire it (measure it from
// before the call). It returns grove.ErrSessionExpired for a session the
// leader does not know, and waits for a leader through an election.
func (n *Node) KeepAlive(ctx context.Context, session uint64) (time.Duration, error) {
	for {
		if n.IsLeader() {
			left, res := n.sessions.touch(session, now())
			switch res {
			case touchOK:
				return left, nil
			case touchUnknown:
				return 0, grove.ErrSessionExpired
			}
			// A new leader still catching up, or it just stepped down.
			if err := sleepCtx(ctx, n.cfg.TickInterval, n.donec, n.stopErr); err != nil {
				return 0, err
			}
			continue
		}
		lead := n.Leader()
		if lead != 0 && n.tr != nil {
			left, err := n.keepAliveRemote(ctx, lead, session)
			if err == nil || errors.Is(err, grove.ErrSessionExpired) {
				return left, err
			}
			if errors.Is(err, errLeaderChanged) {
				continue // ask the new leader, or wait for one
			}
			if errors.Is(err, grove.ErrNotLeader) {
				// The leader is catching up (or stepped down): ask again soon.
				if err := sleepCtx(ctx, n.cfg.TickInterval, n.donec, n.stopErr); err != nil {
					return 0, err
				}
				continue
			}
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
		}
		if err := n.waitLeaderChange(ctx, n.cfg.TickInterval*time.Duration(n.cfg.ElectionTicks)); err != nil {
			return 0, err
		}
	}
}

// errLeaderChanged ends a keep-alive sent to a node that is no longer
// this node's leader; KeepAlive asks the new one.
var errLeaderChanged = errors.New("core: leader changed")

// waitLeaderChange waits for the next leader change, at most d.
func (n *Node) waitLeaderChange(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-n.leaderChanged():
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return n.stopErr()
	}
}

func (n *Node) keepAliveRemote(ctx context.Context, lead, session uint64) (time.Duration, error) {
	id, ch := n.kaWaits.register()
	defer n.kaWaits.cancel(id)
	msg, err := envelope(envKeepAlive, keepAliveMsg{From: n.cfg.ID, ReqID: id, Session: session})
	if err != nil {
		return 0, err
	}
	// A leader that died with the keep-alive unanswered never answers:
	// once this node follows another leader (or none), ask again at once
	// instead of waiting out the timer. A client re-attaching here after
	// its server (the leader) was killed waits for this keep-alive.
	changed := n.leaderChanged()
	if n.Leader() != lead {
		return 0, errLeaderChanged
	}
	n.tr.Send(lead, msg)
	t := time.NewTimer(n.cfg.TickInterval * time.Duration(n.cfg.ElectionTicks))
	defer t.Stop()
	select {
	case ack := <-ch:
		if ack.Code != grove.CodeOK {
			return 0, grove.CodeError(ack.Code)
		}
		return time.Duration(ack.RemainingMs) * time.Millisecond, nil
	case <-changed:
		return 0, errLeaderChanged
	case <-t.C:
		return 0, grove.ErrOperationTimeout
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.donec:
		return 0, n.stopErr()
	}
}

// answerKeepAlive runs on the leader for a follower's keep-alive.
func (n *Node) answerKeepAlive(ka keepAliveMsg) {
	ack := keepAliveAck{ReqID: ka.ReqID, Code: grove.CodeNotLeader}
	if n.IsLeader() {
		switch left, res := n.sessions.touch(ka.Session, now()); res {
		case touchOK:
			ack.Code, ack.RemainingMs = grove.CodeOK, left.Milliseconds()
		case touchUnknown:
			ack.Code = grove.CodeSessionExpired
		}
	}
	if b, err := envelope(envKeepAliveAck, ack); err == nil && n.tr != nil {
		n.tr.Send(ka.From, b)
	}
}

// expireSessions proposes the expiry of every session past its deadline
// (leader, loop goroutine).
func (n *Node) expireSessions() {
	ids := n.sessions.expired(now())
	if len(ids) == 0 {
		return
	}
	data, err := command.Encode(&command.Expire{Sessions: ids})
	if err != nil {
		n.log.Error("encode expiry", "err", err)
		return
	}
	n.log.Info("expiring sessions", "sessions", ids)
	n.propose(proposal{data: data, errc: make(chan error, 1)})
}

// flushTouches sends the sessions heard from since the last tick to the
// leader (follower, loop goroutine).
func (n *Node) flushTouches() {
	ids := n.sessions.drainTouched()
	if len(ids) == 0 || n.tr == nil || n.loopState.lead == 0 {
		return
	}
	if b, err := envelope(envTouch, touchMsg{Sessions: ids}); err == nil {
		n.tr.Send(n.loopState.lead, b)
	}
}

// sessionTracker keeps session deadlines on the leader and collects touches
// on followers. Deadlines are local and never replicated: a new leader gives
// every session a fresh full timeout, once it has applied everything
// committed before its term (ready).
type sessionTracker struct {
	mu       sync.Mutex
	leader   bool
	ready    bool                       // leader only: sessions loaded
	sessions map[uint64]*trackedSession // leader only
	touched  map[uint64]struct{}        // follower only: touches to relay
}

type trackedSession struct {
	timeout  time.Duration
	deadline time.Time
	expiring bool // an expiry was proposed
}

// touchResult says what a touch found.
type touchResult int

const (
	touchOK       touchResult = iota // known session, deadline extended
	touchUnknown                     // no such session (or expiring)
	touchNotReady                    // a new leader not yet caught up: ask again
	touchRelayed                     // follower: queued for the leader
)

func newSessionTracker() *sessionTracker {
	return &sessionTracker{sessions: map[uint64]*trackedSession{}, touched: map[uint64]struct{}{}}
}

// startLeading marks this node leader; sessions are unknown until ready.
func (st *sessionTracker) startLeading() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.leader, st.ready = true, false
	st.sessions = map[uint64]*trackedSession{}
	st.touched = map[uint64]struct{}{}
}

// becomeReady loads every session with a fresh full timeout.
func (st *sessionTracker) becomeReady(list []fsm.Session, t time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.leader {
		return
	}
	st.ready = true
	st.sessions = make(map[uint64]*trackedSession, len(list))
	for _, s := range list {
		d := time.Duration(s.TimeoutMs) * time.Millisecond
		st.sessions[s.ID] = &trackedSession{timeout: d, deadline: t.Add(d)}
	}
}

func (st *sessionTracker) isReady() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ready
}

func (st *sessionTracker) stepDown() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.leader, st.ready = false, false
	st.sessions = map[uint64]*trackedSession{}
}

// reload re-reads the sessions after a snapshot install.
func (st *sessionTracker) reload(n *Node) error {
	if !st.isReady() {
		return nil
	}
	list, err := loadSessions(n)
	if err != nil {
		return err
	}
	st.becomeReady(list, now())
	return nil
}

// loadSessions reads every session from the applied state.
func loadSessions(n *Node) ([]fsm.Session, error) {
	var list []fsm.Session
	err := n.readState(func(tx fsm.Tx) error {
		var err error
		list, err = fsm.Sessions(tx)
		return err
	})
	return list, err
}

func (st *sessionTracker) add(id uint64, timeout time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ready {
		st.sessions[id] = &trackedSession{timeout: timeout, deadline: now().Add(timeout)}
	}
}

func (st *sessionTracker) remove(id uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.sessions, id)
	delete(st.touched, id)
}

// touch extends a session's deadline on a ready leader and returns the time
// left; a follower queues the touch for the leader.
func (st *sessionTracker) touch(id uint64, t time.Time) (time.Duration, touchResult) {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case !st.leader:
		st.touched[id] = struct{}{}
		return 0, touchRelayed
	case !st.ready:
		return 0, touchNotReady
	}
	s, ok := st.sessions[id]
	if !ok || s.expiring {
		return 0, touchUnknown
	}
	s.deadline = t.Add(s.timeout)
	return s.timeout, touchOK
}

func (st *sessionTracker) drainTouched() []uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.touched) == 0 {
		return nil
	}
	ids := make([]uint64, 0, len(st.touched))
	for id := range st.touched {
		ids = append(ids, id)
	}
	st.touched = map[uint64]struct{}{}
	return ids
}

// expired returns the sessions past their deadline, marking them expiring
// so each is proposed once per leadership. A leader that is not ready
// expires nothing.
func (st *sessionTracker) expired(t time.Time) []uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	var ids []uint64
	if !st.ready {
		return nil
	}
	for id, s := range st.sessions {
		if !s.expiring && t.After(s.deadline) {
			s.expiring = true
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// keepAliveWaits pairs remote keep-alives with their answers.
type keepAliveWaits struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]chan keepAliveAck
}

func newKeepAliveWaits() *keepAliveWaits { return &keepAliveWaits{m: map[uint64]chan keepAliveAck{}} }

func (k *keepAliveWaits) register() (uint64, chan keepAliveAck) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.next++
	ch := make(chan keepAliveAck, 1)
	k.m[k.next] = ch
	return k.next, ch
}

func (k *keepAliveWaits) cancel(id uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, id)
}

func (k *keepAliveWaits) deliver(ack keepAliveAck) {
	k.mu.Lock()
	ch := k.m[ack.ReqID]
	delete(k.m, ack.ReqID)
	k.mu.Unlock()
	if ch != nil {
		ch <- ack
	}
}
