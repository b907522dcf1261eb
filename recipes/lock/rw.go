package lock

import (
	"context"
	"strings"

	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/recipes/internal/contend"
)

// RWMutex is a distributed shared/exclusive lock at a directory. Readers
// share it; a writer holds it alone. Requests are served in arrival order,
// so a waiting writer holds back later readers and is never starved.
//
// A reader waits only for the nearest writer before it; a writer waits for
// its immediate predecessor, whatever its kind.
type RWMutex struct {
	s      *client.Session
	dir    string
	reader slot
	writer slot
}

// NewRWMutex returns the shared/exclusive lock at dir.
func NewRWMutex(s *client.Session, dir string) *RWMutex { return &RWMutex{s: s, dir: dir} }

const (
	readPrefix  = "read-"
	writePrefix = "write-"
)

// RLock takes the lock shared.
func (m *RWMutex) RLock(ctx context.Context) error {
	return m.reader.take(ctx, m.s, m.dir, readPrefix, func(me contend.Node, all []contend.Node) ([]contend.Node, bool, error) {
		var last []contend.Node
		for _, n := range all[:index(all, me)] {
			if strings.HasPrefix(n.Name, writePrefix) {
				last = []contend.Node{n}
			}
		}
		// The nearest writer may go by cancelling while earlier writers
		// still hold: look again once it is gone.
		return last, false, nil
	})
}

// Lock takes the lock exclusively.
func (m *RWMutex) Lock(ctx context.Context) error {
	return m.writer.take(ctx, m.s, m.dir, writePrefix, func(me contend.Node, all []contend.Node) ([]contend.Node, bool, error) {
		i := index(all, me)
		if i == 0 {
			return nil, true, nil
		}
		return all[i-1 : i], i == 1, nil // the immediate predecessor, whatever its kind
	})
}

// RUnlock releases a shared hold.
func (m *RWMutex) RUnlock(ctx context.Context) error { return m.reader.drop(ctx, m.s) }

// Unlock releases the exclusive hold.
func (m *RWMutex) Unlock(ctx context.Context) error { return m.writer.drop(ctx, m.s) }

// Lost returns a channel closed when the current exclusive hold (or, if
// none, shared hold) may be gone.
func (m *RWMutex) Lost() <-chan struct{} {
	if l := m.writer.lost(); l != nil {
		return l
	}
	return m.reader.lost()
}

// Token returns the fencing token of the exclusive hold.
func (m *RWMutex) Token() (int64, error) { return m.writer.token() }

// Semaphore lets at most N sessions hold it at once; each hold has a
// token. Waiters queue in arrival order; a waiter watches only the holder
// whose release would let it in.
type Semaphore struct {
	s    *client.Session
	dir  string
	n    int
	slot slot
}

// NewSemaphore returns the semaphore of n permits at dir. Every user of a
// semaphore must use the same n.
func NewSemaphore(s *client.Session, dir string, n int) *Semaphore {
	return &Semaphore{s: s, dir: dir, n: max(n, 1)}
}

// Acquire takes a permit, waiting for one.
func (m *Semaphore) Acquire(ctx context.Context) error {
	return m.slot.take(ctx, m.s, m.dir, "permit-", func(me contend.Node, all []contend.Node) ([]contend.Node, bool, error) {
		i := index(all, me)
		if i < m.n {
			return nil, true, nil
		}
		return []contend.Node{all[i-m.n]}, false, nil
	})
}

// Release returns the permit.
func (m *Semaphore) Release(ctx context.Context) error { return m.slot.drop(ctx, m.s) }

// Token returns the current permit's token (its node's creation zxid).
func (m *Semaphore) Token() (int64, error) { return m.slot.token() }

// Lost returns a channel closed when the current permit may be gone.
func (m *Semaphore) Lost() <-chan struct{} { return m.slot.lost() }
