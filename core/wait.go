package core

import (
	"context"
	"sync"

	"github.com/grovekit/grove/internal/fsm"
)

// waitKey identifies the entry a proposer waits for: a session request by
// (session, seq), a session creation by its password token.
type waitKey struct {
	session uint64
	seq     uint64
	token   string
}

// waitRegistry pairs proposers with the outcomes of their entries.
type waitRegistry struct {
	mu sync.Mutex
	m  map[waitKey][]chan *fsm.Outcome
}

func newWaitRegistry() *waitRegistry {
	return &waitRegistry{m: map[waitKey][]chan *fsm.Outcome{}}
}

// register returns a channel (buffer 1) that gets the outcome for k.
func (w *waitRegistry) register(k waitKey) chan *fsm.Outcome {
	ch := make(chan *fsm.Outcome, 1)
	w.mu.Lock()
	w.m[k] = append(w.m[k], ch)
	w.mu.Unlock()
	return ch
}

// cancel removes ch from k's waiters.
func (w *waitRegistry) cancel(k waitKey, ch chan *fsm.Outcome) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.m[k]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.m, k)
	} else {
		w.m[k] = list
	}
}

// trigger hands o to everyone waiting for its entry.
func (w *waitRegistry) trigger(o *fsm.Outcome) {
	var k waitKey
	switch {
	case o.Created != nil:
		k = waitKey{token: string(o.Created.Password)}
	case o.Seq != 0:
		k = waitKey{session: o.Session, seq: o.Seq}
	default:
		return
	}
	w.mu.Lock()
	list := w.m[k]
	delete(w.m, k)
	w.mu.Unlock()
	for _, ch := range list {
		ch <- o
	}
}

// notifier publishes a monotonically increasing index and lets goroutines
// wait for it to reach a value.
type notifier struct {
	mu    sync.Mutex
	value uint64
	ch    chan struct{} // closed and replaced on every increase
}

func (nt *notifier) init() { nt.ch = make(chan struct{}) }

func (nt *notifier) set(v uint64) {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if v <= nt.value {
		return
	}
	nt.value = v
	close(nt.ch)
	nt.ch = make(chan struct{})
}

func (nt *notifier) get() (uint64, <-chan struct{}) {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	return nt.value, nt.ch
}

// wait blocks until the value reaches v, ctx ends or stop closes.
func (nt *notifier) wait(ctx context.Context, v uint64, stop <-chan struct{}, stopErr func() error) error {
	for {
		cur, ch := nt.get()
		if cur >= v {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return stopErr()
		}
	}
}

// size returns how many requests are waiting for their outcome.
func (w *waitRegistry) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}
