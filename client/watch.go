package client

import (
	"context"
	"strings"
	"sync"

	"github.com/grovekit/grove"
)

// Watch is a persistent watch set by AddWatch. Its channel C delivers every
// matching event in order, queueing without loss, until Remove or the end
// of the session closes it.
type Watch struct {
	// C delivers the events.
	C <-chan grove.Event

	s         *Session
	path      string // cluster path
	recursive bool
	c         chan grove.Event

	mu      sync.Mutex
	queue   []grove.Event
	wake    chan struct{}
	stopped bool
	done    chan struct{}
}

// AddWatch sets a persistent watch on path: every creation, deletion and
// data change of the node (and, if recursive, of every node below it), and
// for a non-recursive watch also changes to its children. It stays until
// Remove or the session ends.
func (s *Session) AddWatch(ctx context.Context, path string, recursive bool) (*Watch, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kind := grove.WatchPersistent
	if recursive {
		kind = grove.WatchPersistentRecursive
	}
	w := &Watch{s: s, path: s.abs(path), recursive: recursive, c: make(chan grove.Event, s.opts.eventBuffer),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.C = w.c
	s.mu.Lock()
	s.watches[w] = struct{}{}
	ids := s.ids
	s.mu.Unlock()
	if err := s.b.AddWatch(ctx, s.id, w.path, kind, ids); err != nil {
		s.mu.Lock()
		delete(s.watches, w)
		s.mu.Unlock()
		return nil, err
	}
	if !s.spawn(w.pump) {
		close(w.c)
		return nil, s.Err()
	}
	return w, nil
}

// Remove ends the watch and closes C.
func (w *Watch) Remove(ctx context.Context) error {
	kind := grove.WatchPersistent
	if w.recursive {
		kind = grove.WatchPersistentRecursive
	}
	w.s.mu.Lock()
	_, ok := w.s.watches[w]
	delete(w.s.watches, w)
	// Another watch of the same kind on the same path keeps the server's
	// registration alive.
	shared := false
	for o := range w.s.watches {
		shared = shared || (o.path == w.path && o.recursive == w.recursive)
	}
	w.s.mu.Unlock()
	w.stop()
	if !ok || shared {
		return nil
	}
	return w.s.b.RemoveWatches(ctx, w.s.id, w.path, kind)
}

func (w *Watch) matches(ev grove.Event) bool {
	if w.recursive {
		return ev.Type != grove.EventNodeChildrenChanged &&
			(ev.Path == w.path || strings.HasPrefix(ev.Path, w.path+"/") || w.path == "/")
	}
	return ev.Path == w.path
}

// push queues an event without blocking.
func (w *Watch) push(ev grove.Event) {
	w.mu.Lock()
	if !w.stopped {
		w.queue = append(w.queue, ev)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Watch) stop() {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.done)
	}
	w.mu.Unlock()
}

// pump owns C: it moves queued events into it and closes it at the end.
func (w *Watch) pump() {
	defer close(w.c)
	for {
		w.mu.Lock()
		q := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, ev := range q {
			select {
			case w.c <- ev:
			case <-w.done:
				return
			}
		}
		select {
		case <-w.wake:
		case <-w.done:
			return
		}
	}
}

// oneShot is a one-shot watch of a read. It fires for the first matching
// event after the state its read saw (floor); events that arrive before the
// read returns wait in pending until the floor is known.
type oneShot struct {
	ch      chan grove.Event
	floor   uint64
	set     bool
	pending []grove.Event
}

// onEvent routes a watch event of this session (called by the backend; it
// must not block).
func (s *Session) onEvent(ev grove.Event) {
	if s.opts.chroot != "" {
		if ev.Path != s.opts.chroot && !strings.HasPrefix(ev.Path, s.opts.chroot+"/") {
			return
		}
	}
	out := ev
	out.Path = s.rel(ev.Path)
	s.mu.Lock()
	if uint64(ev.Zxid) > s.lastZxid {
		s.lastZxid = uint64(ev.Zxid)
	}
	var fire []chan grove.Event
	match := func(kind grove.WatchKind) {
		k := watchKey{path: ev.Path, kind: kind}
		list := s.oneShot[k]
		kept := list[:0]
		for _, w := range list {
			switch {
			case !w.set:
				w.pending = append(w.pending, out)
				kept = append(kept, w)
			case uint64(ev.Zxid) > w.floor:
				fire = append(fire, w.ch)
			default:
				kept = append(kept, w) // a change its read already saw
			}
		}
		if len(kept) == 0 {
			delete(s.oneShot, k)
		} else {
			s.oneShot[k] = kept
		}
	}
	switch ev.Type {
	case grove.EventNodeCreated, grove.EventNodeDataChanged:
		match(grove.WatchData)
	case grove.EventNodeDeleted:
		match(grove.WatchData)
		match(grove.WatchChildren)
	case grove.EventNodeChildrenChanged:
		match(grove.WatchChildren)
	}
	var persistent []*Watch
	for w := range s.watches {
		if w.matches(ev) {
			persistent = append(persistent, w)
		}
	}
	s.mu.Unlock()
	for _, ch := range fire {
		ch <- out // buffered 1, fired once
		close(ch)
	}
	for _, w := range persistent {
		w.push(out)
	}
}

// addOneShot registers a one-shot watch before the read that sets the
// server-side watch, so no event can slip between the two.
func (s *Session) addOneShot(path string, kind grove.WatchKind) *oneShot {
	w := &oneShot{ch: make(chan grove.Event, 1)}
	s.mu.Lock()
	k := watchKey{path: path, kind: kind}
	s.oneShot[k] = append(s.oneShot[k], w)
	s.mu.Unlock()
	return w
}

// armOneShot sets the floor once the read returned (zxid), firing at once
// for a later event that already arrived; a failed read (ok false) drops it.
func (s *Session) armOneShot(path string, kind grove.WatchKind, w *oneShot, zxid uint64, ok bool) {
	s.mu.Lock()
	k := watchKey{path: path, kind: kind}
	remove := func() bool {
		list := s.oneShot[k]
		found := false
		for i, c := range list {
			if c == w {
				s.oneShot[k] = append(list[:i], list[i+1:]...)
				found = true
				break
			}
		}
		if len(s.oneShot[k]) == 0 {
			delete(s.oneShot, k)
		}
		return found
	}
	if !ok {
		remove()
		s.mu.Unlock()
		return
	}
	w.set, w.floor = true, zxid
	var hit *grove.Event
	for i := range w.pending {
		if uint64(w.pending[i].Zxid) > zxid {
			hit = &w.pending[i]
			break
		}
	}
	w.pending = nil
	if hit != nil && !remove() {
		hit = nil // the session ended and closed the channel already
	}
	s.mu.Unlock()
	if hit != nil {
		w.ch <- *hit
		close(w.ch)
	}
}
