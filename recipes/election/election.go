package election

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/recipes/internal/contend"
)

// Errors.
var (
	// ErrNotLeader is returned by Proclaim and Resign without leadership.
	ErrNotLeader = errors.New("election: not the leader")
	// ErrNoLeader is returned by Leader when nobody campaigns.
	ErrNoLeader = errors.New("election: no leader")
	// ErrCampaigning is returned by Campaign while this Election already
	// campaigns or leads.
	ErrCampaigning = errors.New("election: already campaigning")
)

// Leader describes a leader.
type Leader struct {
	Value []byte
	Term  int64 // the creation zxid of its node: grows with every new leader
	Path  string
}

// Election is one campaigner at a directory. Safe for concurrent use.
type Election struct {
	s   *client.Session
	dir string

	mu       sync.Mutex
	running  bool
	node     contend.Node
	lost     <-chan struct{}
	stopHold func()
}

// New returns a campaigner for the election at dir.
func New(s *client.Session, dir string) *Election { return &Election{s: s, dir: dir} }

// Campaign joins the election with value and blocks until this campaigner
// leads or ctx ends (its candidacy is then withdrawn, nothing left
// behind).
func (e *Election) Campaign(ctx context.Context, value []byte) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return ErrCampaigning
	}
	e.running = true
	e.mu.Unlock()
	fail := func(err error) error {
		e.mu.Lock()
		e.running = false
		e.mu.Unlock()
		return err
	}
	me, err := contend.Create(ctx, e.s, e.dir, "candidate-", value)
	if err != nil {
		return fail(err)
	}
	for err == nil {
		// Wait for the immediate predecessor; when it goes, look again (it
		// may have withdrawn rather than led).
		var all []contend.Node
		if all, err = contend.List(ctx, e.s, e.dir, "candidate-"); err != nil {
			break
		}
		var pred *contend.Node
		present := false
		for i := range all {
			if all[i].Seq < me.Seq {
				pred = &all[i]
			}
			present = present || all[i].Seq == me.Seq
		}
		if !present {
			err = fmt.Errorf("election: own candidacy %s vanished: %w", me.Path, grove.ErrSessionExpired)
			break
		}
		if pred == nil {
			break
		}
		err = contend.WaitGone(ctx, e.s, pred.Path)
	}
	if err != nil {
		contend.DeleteLater(e.s, me.Path)
		return fail(err)
	}
	lost, stop := contend.Hold(e.s, me.Path)
	e.mu.Lock()
	e.node, e.lost, e.stopHold = me, lost, stop
	e.mu.Unlock()
	return nil
}

// Term returns this campaigner's term while it leads.
func (e *Election) Term() (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lost == nil {
		return 0, ErrNotLeader
	}
	return e.node.Czxid, nil
}

// Lost returns a channel closed when leadership may be gone (nil when not
// leading).
func (e *Election) Lost() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lost
}

// Guard returns an op that makes a Session.Multi commit only while this
// campaigner still leads.
func (e *Election) Guard() (grove.Op, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lost == nil {
		return grove.Op{}, ErrNotLeader
	}
	return grove.CheckOp(e.node.Path, -1), nil
}

// Proclaim updates the leader's value without a new election.
func (e *Election) Proclaim(ctx context.Context, value []byte) error {
	e.mu.Lock()
	path, lost := e.node.Path, e.lost
	e.mu.Unlock()
	if lost == nil {
		return ErrNotLeader
	}
	select {
	case <-lost:
		return ErrNotLeader
	default:
	}
	if _, err := e.s.Set(ctx, path, value, -1); err != nil {
		if errors.Is(err, grove.ErrNoNode) {
			return ErrNotLeader
		}
		return err
	}
	return nil
}

// Resign gives up leadership; another campaigner takes over.
func (e *Election) Resign(ctx context.Context) error {
	e.mu.Lock()
	path, stop := e.node.Path, e.stopHold
	leading := e.lost != nil
	e.node, e.lost, e.stopHold, e.running = contend.Node{}, nil, nil, false
	e.mu.Unlock()
	if !leading {
		return ErrNotLeader
	}
	stop()
	err := e.s.Delete(ctx, path, -1)
	if errors.Is(err, grove.ErrNoNode) || errors.Is(err, grove.ErrSessionExpired) || errors.Is(err, grove.ErrSessionClosed) {
		return nil
	}
	if err != nil {
		contend.DeleteLater(e.s, path) // leadership must not outlive the resignation
	}
	return err
}

// Current returns the current leader of the election at dir.
func Current(ctx context.Context, s *client.Session, dir string) (Leader, error) {
	for {
		all, err := contend.List(ctx, s, dir, "candidate-")
		if errors.Is(err, grove.ErrNoNode) || (err == nil && len(all) == 0) {
			return Leader{}, ErrNoLeader
		}
		if err != nil {
			return Leader{}, err
		}
		data, st, err := s.Get(ctx, all[0].Path)
		if errors.Is(err, grove.ErrNoNode) {
			continue // it just left: look again
		}
		if err != nil {
			return Leader{}, err
		}
		return Leader{Value: data, Term: st.Czxid, Path: all[0].Path}, nil
	}
}

// Leader returns the current leader of this campaigner's election.
func (e *Election) Leader(ctx context.Context) (Leader, error) { return Current(ctx, e.s, e.dir) }

// Observe reports the election's leader each time it changes (a new
// leader, or a new value proclaimed), starting with the current one. The
// channel closes when ctx ends or the session does. The goroutine behind
// it belongs to the session: the session's Close waits for it.
func Observe(ctx context.Context, s *client.Session, dir string) <-chan Leader {
	out := make(chan Leader)
	if !contend.Go(ctx, s, func(ctx context.Context) { observe(ctx, s, dir, out) }) {
		close(out)
	}
	return out
}

// observe is Observe's loop; it closes out when it ends.
func observe(ctx context.Context, s *client.Session, dir string, out chan<- Leader) {
	defer close(out)
	var last Leader
	for ctx.Err() == nil {
		if err := contend.EnsurePath(ctx, s, dir); err != nil {
			if s.Err() != nil {
				return
			}
			continue
		}
		_, _, childW, err := s.ChildrenW(ctx, dir)
		if err != nil {
			return
		}
		var dataW <-chan grove.Event
		cur, err := Current(ctx, s, dir)
		if err == nil {
			_, _, dataW, err = s.GetW(ctx, cur.Path)
			if err == nil {
				cur, err = Current(ctx, s, dir) // the value as watched
			}
		}
		if err == nil && (cur.Term != last.Term || string(cur.Value) != string(last.Value)) {
			select {
			case out <- cur:
				last = cur
			case <-ctx.Done():
				return
			}
		}
		if err != nil && !errors.Is(err, ErrNoLeader) && !errors.Is(err, grove.ErrNoNode) {
			return
		}
		select {
		case <-childW:
		case <-dataW:
		case <-ctx.Done():
		case <-s.Done():
			return
		}
	}
}

// Observe is the package Observe for this campaigner's election.
func (e *Election) Observe(ctx context.Context) <-chan Leader { return Observe(ctx, e.s, e.dir) }
