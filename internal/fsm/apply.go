package fsm

import (
	"encoding/binary"
	"fmt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// Apply applies one log entry's data at raft (index, term) inside tx and
// records index and term as applied. The entry's zxid is index and its time
// is the time stamped in the entry.
//
// The returned error is only for storage failures (including a corrupt
// stored record) and is fatal to the node: the caller must roll tx back. A
// malformed entry is a deterministic no-op that returns &Outcome{} (Kind 0);
// its index is still recorded as applied.
func Apply(tx Tx, index, term uint64, data []byte) (*Outcome, error) {
	st, err := openStore(tx)
	if err != nil {
		return nil, err
	}
	var out *Outcome
	if e, derr := command.Decode(data); derr == nil {
		a := &applier{st: st, zxid: int64(index), now: e.TimeMs} // raft indexes fit
		if out, err = a.apply(index, e); err != nil {
			return nil, err
		}
	} else {
		out = &Outcome{} // not a command (an empty or foreign entry): nothing to do
	}
	if err := SetApplied(tx, index, term); err != nil {
		return nil, err
	}
	return out, nil
}

// apply dispatches a decoded entry.
func (a *applier) apply(index uint64, e *command.Entry) (*Outcome, error) {
	switch body := e.Body.(type) {
	case *command.Request:
		return a.applyRequest(body)
	case *command.CreateSession:
		// A retried create (same password) answers with the session the
		// first one made, instead of opening a second session.
		if id := a.st.tokens.Get(body.Password); len(id) == 8 && len(body.Password) > 0 {
			if s, ok, err := a.st.session(binary.BigEndian.Uint64(id)); err != nil {
				return nil, err
			} else if ok {
				return &Outcome{Kind: command.KindCreateSession, Session: s.ID, Created: &s}, nil
			}
		}
		s := &Session{ID: index, TimeoutMs: body.TimeoutMs, Password: append([]byte(nil), body.Password...)}
		if err := a.st.putSession(s); err != nil {
			return nil, err
		}
		if len(s.Password) > 0 {
			if err := a.st.tokens.Put(s.Password, u64(index)); err != nil {
				return nil, fmt.Errorf("fsm: write session token: %w", err)
			}
		}
		return &Outcome{Kind: command.KindCreateSession, Session: index, Created: s}, nil
	case *command.Expire:
		return a.applyExpire(body)
	case *command.Reap:
		return a.applyReap(body)
	}
	return &Outcome{}, nil
}

// applyRequest applies a session's request under the sequence rules: an
// unknown session gets SessionExpired; an old seq gets its cached result (or
// StaleRequest once evicted); a gap gets OutOfOrder; the next seq executes and
// its result is cached.
func (a *applier) applyRequest(req *command.Request) (*Outcome, error) {
	out := &Outcome{Kind: command.KindRequest, Session: req.Session, Seq: req.Seq}
	sess, ok, err := a.st.session(req.Session)
	if err != nil {
		return nil, err
	}
	switch {
	case !ok:
		out.Result = &command.Result{Code: grove.CodeSessionExpired}
		return out, nil
	case req.Op == command.OpFence && req.Seq > sess.LastSeq:
		if err := a.dropResults(sess.ID); err != nil {
			return nil, err
		}
		out.Result = &command.Result{Path: req.Path}
		return out, a.cacheResult(&sess, req.Seq, out.Result)
	case req.Seq <= sess.LastSeq:
		cached := a.st.results.Get(resultKey(req.Session, req.Seq))
		if cached == nil {
			out.Result = &command.Result{Code: grove.CodeStaleRequest}
			return out, nil
		}
		r, err := command.DecodeResult(cached)
		if err != nil {
			return nil, fmt.Errorf("fsm: cached result %d/%d: %w", req.Session, req.Seq, err)
		}
		out.Result, out.Duplicate = r, true
		return out, nil
	case req.Seq != sess.LastSeq+1:
		out.Result = &command.Result{Code: grove.CodeOutOfOrder}
		return out, nil
	}

	a.session, a.ids = req.Session, req.Identities
	if req.Op == command.OpCloseSession {
		a.ov = a.newOverlay()
		if err := a.closeSession(req.Session); err != nil {
			return nil, err
		}
		if err := a.ov.flush(); err != nil {
			return nil, err
		}
		out.Result, out.Events, out.EventACLs, out.Closed = &command.Result{}, a.events, a.acls, []uint64{req.Session}
		return out, nil
	}
	if out.Result, err = a.execute(req); err != nil {
		return nil, err
	}
	out.Events, out.EventACLs = a.events, a.acls
	if err := a.cacheResult(&sess, req.Seq, out.Result); err != nil {
		return nil, err
	}
	return out, nil
}

// dropResults forgets every cached result of a session (a fence makes
// them unreachable: their sequence numbers are below it).
func (a *applier) dropResults(session uint64) error {
	if err := deletePrefix(a.st.results, resultKey(session, 0)[:8]); err != nil {
		return fmt.Errorf("fsm: drop results: %w", err)
	}
	return nil
}

// cacheResult stores the result of seq, advances the session's LastSeq and
// evicts the result that fell out of the window.
func (a *applier) cacheResult(sess *Session, seq uint64, r *command.Result) error {
	b, err := command.EncodeResult(r)
	if err != nil {
		return fmt.Errorf("fsm: encode result: %w", err)
	}
	if err := a.st.results.Put(resultKey(sess.ID, seq), b); err != nil {
		return fmt.Errorf("fsm: write result: %w", err)
	}
	if seq > ResultWindow {
		if err := a.st.results.Delete(resultKey(sess.ID, seq-ResultWindow)); err != nil {
			return fmt.Errorf("fsm: evict result: %w", err)
		}
	}
	sess.LastSeq = seq
	return a.st.putSession(sess)
}

// execute runs the operation of a request all or nothing: the overlay is
// flushed, and the events kept, only if it succeeds.
func (a *applier) execute(req *command.Request) (*command.Result, error) {
	a.ov = a.newOverlay()
	var r *command.Result
	switch req.Op {
	case command.OpCreate, command.OpDelete, command.OpSetData, command.OpCheck:
		op := grove.Op{
			Type: opType(req.Op), Path: req.Path, Data: req.Data, ACL: req.ACL,
			Mode: req.Mode, TTL: req.TTL, Version: req.Version, NullData: req.NullData,
		}
		res, err := a.runOp(&op)
		if err != nil {
			return nil, err
		}
		r = &command.Result{Code: res.Code, Path: res.Path, Stat: res.Stat}
	case command.OpSetACL:
		var err error
		if r, err = a.setACL(req.Path, req.ACL, req.Version); err != nil {
			return nil, err
		}
	case command.OpMulti:
		var err error
		if r, err = a.multi(req.Ops); err != nil {
			return nil, err
		}
	case command.OpReject:
		r = &command.Result{Code: req.Code}
		if r.Code == grove.CodeOK {
			r.Code = grove.CodeBadArguments
		}
	default:
		r = &command.Result{Code: grove.CodeUnimplemented}
	}
	if r.Code != grove.CodeOK {
		a.events, a.acls = nil, nil
		return r, nil
	}
	return r, a.ov.flush()
}

// multi runs ops in order over the overlay. On the first refusal it returns
// ZooKeeper's layout: earlier ops Code OK, the failing op its code, later
// ops CodeRuntimeInconsistency, and the failing code as the Result's; the
// caller then drops the overlay.
func (a *applier) multi(ops []grove.Op) (*command.Result, error) {
	results := make([]command.OpResult, len(ops))
	for i := range ops {
		res, err := a.runOp(&ops[i])
		if err != nil {
			return nil, err
		}
		if res.Code == grove.CodeOK {
			results[i] = res
			continue
		}
		for j := range ops {
			results[j] = command.OpResult{Type: ops[j].Type}
			if j > i {
				results[j].Code = grove.CodeRuntimeInconsistency
			}
		}
		results[i].Code = res.Code
		return &command.Result{Code: res.Code, Multi: results}, nil
	}
	return &command.Result{Multi: results}, nil
}

// applyExpire closes every listed session that exists, as a close request
// would.
func (a *applier) applyExpire(e *command.Expire) (*Outcome, error) {
	out := &Outcome{Kind: command.KindExpire}
	a.ov = a.newOverlay()
	for _, id := range e.Sessions {
		_, ok, err := a.st.session(id)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if err := a.closeSession(id); err != nil {
			return nil, err
		}
		out.Closed = append(out.Closed, id)
	}
	if err := a.ov.flush(); err != nil {
		return nil, err
	}
	out.Events, out.EventACLs = a.events, a.acls
	return out, nil
}

// opType maps a single-operation request kind to its multi operation type.
func opType(k command.OpKind) grove.OpType {
	switch k {
	case command.OpCreate:
		return grove.OpCreate
	case command.OpDelete:
		return grove.OpDelete
	case command.OpSetData:
		return grove.OpSet
	}
	return grove.OpCheck
}
