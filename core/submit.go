package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/fsm"
)

// Request is a write of one session, the unit of the request pipeline that
// every client protocol drives. Seq numbers a session's writes from 1 with
// no gaps; writes apply in Seq order and a retried Seq gets its original
// result, so resending after a lost connection is always safe.
type Request = command.Request

// Result is the outcome of a Request.
type Result = command.Result

// Submit proposes a session write and waits until it is applied on this
// node, then returns its result: Begin followed by Pending.Wait.
//
// The result's Code carries the operation's error (for example
// grove.CodeNoNode); the returned error is for the pipeline itself: ctx
// ending, the node stopping, or data over MaxDataSize (grove.ErrTooLarge).
// Watch events caused by the write are delivered before Submit returns.
func (n *Node) Submit(ctx context.Context, req *Request) (*Result, error) {
	p, err := n.Begin(ctx, req)
	if err != nil {
		return nil, err
	}
	return p.Wait(ctx)
}

// Pending is a proposed request whose result is not known yet.
type Pending struct {
	n    *Node
	key  waitKey
	data []byte
	ch   chan *fsm.Outcome // nil while no Wait is registered
	// errc carries raft's verdict on the first proposal until a Wait has
	// read it (then nil).
	errc chan error
	// rejection is why BeginOrReject turned the write into a rejection.
	rejection error
}

// Rejection returns the error a write was refused with before raft (by
// BeginOrReject: too large, malformed), whose code its result carries, so
// a front can answer with the whole message (sizes and limits); nil for
// a write that went to raft as it was.
func (p *Pending) Rejection() error { return p.rejection }

// Begin hands a session write to raft without waiting for it to apply, so
// a client front end can pipeline: requests begun in order from one
// goroutine are proposed in that order. It blocks only while the proposal
// queue is full. Call Wait (or Cancel) on the result exactly once.
func (n *Node) Begin(ctx context.Context, req *Request) (*Pending, error) {
	if req.Seq == 0 || req.Session == 0 {
		return nil, fmt.Errorf("core: request needs a session and a sequence number from 1: %w", grove.ErrBadArguments)
	}
	if err := n.checkSize(req); err != nil {
		return nil, err
	}
	data, err := command.Encode(req)
	if err != nil {
		return nil, err
	}
	n.Touch(req.Session)
	p := &Pending{n: n, key: waitKey{session: req.Session, seq: req.Seq}, data: data}
	p.ch = n.waits.register(p.key)
	p.errc = make(chan error, 1)
	select {
	case n.propc <- proposal{data: data, errc: p.errc}:
		return p, nil
	case <-ctx.Done():
		n.waits.cancel(p.key, p.ch)
		return nil, ctx.Err()
	case <-n.donec:
		n.waits.cancel(p.key, p.ch)
		return nil, n.stopErr()
	}
}

// Cancel stops waiting for the request; it may still apply.
func (p *Pending) Cancel() { p.release() }

func (p *Pending) release() {
	if p.ch != nil {
		p.n.waits.cancel(p.key, p.ch)
		p.ch = nil
	}
}

// Wait blocks until the request is applied on this node and returns its
// result. It holds the request through an election and re-proposes it if
// its entry is lost, until ctx ends; a request that overtook an earlier one
// of its session is re-proposed after it.
func (p *Pending) Wait(ctx context.Context) (*Result, error) {
	n := p.n
	if p.ch == nil {
		// An earlier Wait gave up (its ctx ended): wait again, for
		// example to resolve an abandoned write in the background.
		p.ch = n.waits.register(p.key)
	}
	defer p.release()
	proposed := false
	if p.errc != nil {
		switch err := n.verdict(ctx, p.errc); {
		case err == nil:
			proposed = true
		case errors.Is(err, raft.ErrProposalDropped):
			// No leader took it: waitProposal proposes again.
			n.stats.proposalsDropped.Add(1)
		default:
			return nil, err // ctx or the node ended; the verdict stays pending
		}
		p.errc = nil
	}
	o, err := n.waitProposal(ctx, p.key, p.data, p.ch, proposed)
	backoff := n.cfg.TickInterval
	for err == nil && o.Result != nil && o.Result.Code == grove.CodeOutOfOrder {
		// An earlier request of this session is still on its way: let it
		// land, then try again, backing off so a lost earlier request does
		// not turn into a storm of rejected entries.
		if err := sleepCtx(ctx, backoff, n.donec, n.stopErr); err != nil {
			return nil, err
		}
		backoff = min(2*backoff, n.cfg.RetryInterval)
		n.Touch(p.key.session)
		p.ch = n.waits.register(p.key) // the last outcome consumed the registration
		o, err = n.waitProposal(ctx, p.key, p.data, p.ch, false)
	}
	if err != nil {
		return nil, err
	}
	if o.Result == nil {
		return nil, fmt.Errorf("core: request applied without a result: %w", grove.ErrSystemError)
	}
	res := *o.Result // the outcome is shared with other waiters of the entry
	res.Zxid = o.Index
	return &res, nil
}

func (n *Node) checkSize(req *Request) error {
	limit := n.cfg.MaxDataSize
	if len(req.Data) > limit {
		return fmt.Errorf("core: data of %d bytes exceeds the %d byte limit: %w", len(req.Data), limit, grove.ErrTooLarge)
	}
	total := len(req.Data)
	for _, op := range req.Ops {
		total += len(op.Data) + len(op.Path)
	}
	if total > 4*limit {
		return fmt.Errorf("core: request of %d bytes exceeds the %d byte limit: %w", total, 4*limit, grove.ErrTooLarge)
	}
	return nil
}

// proposeAndWait proposes data and waits for the outcome of the entry
// identified by key.
func (n *Node) proposeAndWait(ctx context.Context, key waitKey, data []byte) (*fsm.Outcome, error) {
	ch := n.waits.register(key)
	defer n.waits.cancel(key, ch)
	return n.waitProposal(ctx, key, data, ch, false)
}

// waitProposal waits for the outcome on ch, re-proposing data when no
// leader takes it or nothing is applied within RetryInterval. With proposed
// the first proposal is already in raft; otherwise waitProposal proposes
// first.
func (n *Node) waitProposal(ctx context.Context, key waitKey, data []byte, ch chan *fsm.Outcome, proposed bool) (*fsm.Outcome, error) {
	retry := time.NewTimer(n.cfg.RetryInterval)
	defer retry.Stop()
	for {
		var err error
		if !proposed {
			err = n.proposeOnce(ctx, data)
		}
		proposed = false
		if err != nil {
			if !errors.Is(err, raft.ErrProposalDropped) {
				return nil, err
			}
			n.stats.proposalsDropped.Add(1)
			// No leader yet: hold the request until one emerges.
			if err := n.waitLeaderChange(ctx, n.cfg.TickInterval); err != nil {
				return nil, err
			}
			continue
		}
		retry.Reset(n.cfg.RetryInterval)
		select {
		case o := <-ch:
			return o, nil
		case <-retry.C:
			n.log.Debug("proposal not applied in time, proposing again", "session", key.session, "seq", key.seq)
		case <-n.leaderChanged():
			// A forwarded proposal may have died with the old leader:
			// propose again at once rather than after RetryInterval
			// (retries are deduplicated).
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-n.donec:
			return nil, n.stopErr()
		}
	}
}

// proposeOnce hands data to the loop and returns raft's verdict.
func (n *Node) proposeOnce(ctx context.Context, data []byte) error {
	p := proposal{data: data, errc: make(chan error, 1)}
	select {
	case n.propc <- p:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return n.stopErr()
	}
	return n.verdict(ctx, p.errc)
}

// verdict waits for raft's verdict on a queued proposal.
func (n *Node) verdict(ctx context.Context, errc chan error) error {
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return n.stopErr()
	}
}

func sleepCtx(ctx context.Context, d time.Duration, stop <-chan struct{}, stopErr func() error) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return stopErr()
	}
}

// OpKind is the kind of a Request's operation.
type OpKind = command.OpKind

// Request operation kinds.
const (
	OpCreate       = command.OpCreate       // Path, Data, ACL, Mode, TTL
	OpDelete       = command.OpDelete       // Path, Version
	OpSetData      = command.OpSetData      // Path, Data, Version
	OpSetACL       = command.OpSetACL       // Path, ACL, Version (the ACL version)
	OpMulti        = command.OpMulti        // Ops
	OpCloseSession = command.OpCloseSession // closes the session
	OpCheck        = command.OpCheck        // Path, Version
)

// OpResult is the outcome of one operation of a multi.
type OpResult = command.OpResult
