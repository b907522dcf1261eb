package lock

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
	// ErrLocked is returned by TryLock when another holder has the lock.
	ErrLocked = errors.New("lock: held by another")
	// ErrNotHeld is returned by Unlock, Token and Guard without a hold.
	ErrNotHeld = errors.New("lock: not held")
	// ErrHeld is returned by Lock on a Mutex value that already holds.
	ErrHeld = errors.New("lock: already held by this Mutex")
)

// hold is one acquisition.
type hold struct {
	node contend.Node
	lost <-chan struct{}
	stop func()
}

// slot is the one hold a lock value has at a time; every lock type keeps
// its holds in slots.
type slot struct {
	mu sync.Mutex
	h  *hold
}

// take acquires into the slot (ErrHeld if it holds already).
func (sl *slot) take(ctx context.Context, s *client.Session, dir, prefix string,
	blocker func(me contend.Node, all []contend.Node) ([]contend.Node, bool, error)) error {
	sl.mu.Lock()
	held := sl.h != nil
	sl.mu.Unlock()
	if held {
		return ErrHeld
	}
	h, err := acquire(ctx, s, dir, prefix, nil, blocker)
	if err != nil {
		return err
	}
	sl.mu.Lock()
	sl.h = h
	sl.mu.Unlock()
	return nil
}

// drop releases the slot's hold.
func (sl *slot) drop(ctx context.Context, s *client.Session) error {
	sl.mu.Lock()
	h := sl.h
	sl.h = nil
	sl.mu.Unlock()
	return release(ctx, s, h)
}

func (sl *slot) held() *hold {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.h
}

func (sl *slot) token() (int64, error) {
	if h := sl.held(); h != nil {
		return h.node.Czxid, nil
	}
	return 0, ErrNotHeld
}

func (sl *slot) guard() (grove.Op, error) {
	if h := sl.held(); h != nil {
		return grove.CheckOp(h.node.Path, -1), nil
	}
	return grove.Op{}, ErrNotHeld
}

func (sl *slot) lost() <-chan struct{} {
	if h := sl.held(); h != nil {
		return h.lost
	}
	return nil
}

// Mutex is a distributed exclusive lock at a directory. A Mutex value
// holds at most one acquisition at a time; it is safe for concurrent use.
type Mutex struct {
	s    *client.Session
	dir  string
	slot slot
}

// NewMutex returns the mutex at dir (created on first use).
func NewMutex(s *client.Session, dir string) *Mutex { return &Mutex{s: s, dir: dir} }

// Lock blocks until the lock is held or ctx ends. On error nothing of the
// attempt is left behind.
func (m *Mutex) Lock(ctx context.Context) error { return m.lock(ctx, true) }

// TryLock takes the lock if it is free right now, else returns ErrLocked.
func (m *Mutex) TryLock(ctx context.Context) error { return m.lock(ctx, false) }

func (m *Mutex) lock(ctx context.Context, wait bool) error {
	return m.slot.take(ctx, m.s, m.dir, "lock-", func(me contend.Node, all []contend.Node) ([]contend.Node, bool, error) {
		i := index(all, me)
		if i == 0 {
			return nil, true, nil
		}
		if !wait {
			return nil, false, ErrLocked
		}
		// Watch the immediate predecessor only; when it goes, list again
		// (it may have cancelled rather than held and released).
		return all[i-1 : i], i == 1, nil
	})
}

// Unlock releases the lock (deleting its node). Unlocking a lost hold is
// not an error.
func (m *Mutex) Unlock(ctx context.Context) error { return m.slot.drop(ctx, m.s) }

// Token returns the fencing token of the current hold: the creation zxid
// of its node, larger than the token of every earlier holder of the lock.
// Pass it to the resources the lock protects so they can refuse a stale
// holder.
func (m *Mutex) Token() (int64, error) { return m.slot.token() }

// Guard returns an op that, put in a Session.Multi, makes the multi
// commit only while this hold is still in place.
func (m *Mutex) Guard() (grove.Op, error) { return m.slot.guard() }

// Lost returns a channel closed when the current hold may be gone (nil
// without a hold: it blocks forever).
func (m *Mutex) Lost() <-chan struct{} { return m.slot.lost() }

// acquire creates a contender node and waits for what blocker says must
// go first. blocker runs on the sorted contenders; final says the hold is
// ours once those nodes are gone (nodes before ours only ever go), else the
// contenders are listed again after the wait. An error from blocker aborts.
// The node is removed on any failure.
func acquire(ctx context.Context, s *client.Session, dir, prefix string, data []byte,
	blocker func(me contend.Node, all []contend.Node) (wait []contend.Node, final bool, err error)) (*hold, error) {
	me, err := contend.Create(ctx, s, dir, prefix, data)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*hold, error) {
		contend.DeleteLater(s, me.Path)
		return nil, err
	}
	for {
		all, err := contend.List(ctx, s, dir)
		if err != nil {
			return fail(err)
		}
		if index(all, me) < 0 {
			return fail(fmt.Errorf("lock: own node %s vanished: %w", me.Path, grove.ErrSessionExpired))
		}
		before, final, err := blocker(me, all)
		if err != nil {
			return fail(err)
		}
		if len(before) > 0 {
			if err := contend.WaitBefore(ctx, s, before); err != nil {
				return fail(err)
			}
		}
		if len(before) == 0 || final {
			lost, stop := contend.Hold(s, me.Path)
			return &hold{node: me, lost: lost, stop: stop}, nil
		}
	}
}

func release(ctx context.Context, s *client.Session, h *hold) error {
	if h == nil {
		return ErrNotHeld
	}
	h.stop()
	err := s.Delete(ctx, h.node.Path, -1)
	if errors.Is(err, grove.ErrNoNode) || errors.Is(err, grove.ErrSessionExpired) || errors.Is(err, grove.ErrSessionClosed) {
		return nil
	}
	if err != nil {
		// The node must not outlive the hold and block every other
		// contender: keep deleting it in the background.
		contend.DeleteLater(s, h.node.Path)
	}
	return err
}

func index(all []contend.Node, me contend.Node) int {
	for i, n := range all {
		if n.Seq == me.Seq {
			return i
		}
	}
	return -1
}
