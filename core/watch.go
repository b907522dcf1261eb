package core

import (
	"sync"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/fsm"
)

// Watcher receives the watch events of one session. Deliver is called from
// the node's apply path: it must not block (queue the event, or drop the
// connection if the queue is full) and must be safe for concurrent use.
// Events for a session arrive in zxid order, at most once per change even
// when several of its watches match.
type Watcher interface {
	Deliver(ev grove.Event)
}

// WatcherFunc adapts a function to Watcher.
type WatcherFunc func(ev grove.Event)

// Deliver calls f(ev).
func (f WatcherFunc) Deliver(ev grove.Event) { f(ev) }

// registration describes a watch a read wants to set.
type registration struct {
	session uint64
	path    string
	kind    grove.WatchKind
	keep    bool // set by the read: register only if the read succeeded
}

// watchSet is one session's watches on one path. A field is the zxid after
// which the watch fires (registration zxid + 1), or 0 when not set.
type watchSet struct {
	data, child, persistent uint64
}

// watchManager keeps every watch of this node and fires them as entries
// apply. One mutex guards it; registrations that come with a read hold it
// across the read so no change falls between the two.
type watchManager struct {
	mu        sync.Mutex
	exact     map[string]map[uint64]*watchSet // path → session → watches
	recursive map[string]map[uint64]uint64    // path → session → fires after zxid
	sinks     map[uint64]Watcher              // session → where its events go
	// paths indexes the paths each session watches, so closing a session
	// (in the apply path) costs its own watches, not every watch.
	paths map[uint64]map[string]struct{}
	count int
}

func newWatchManager() *watchManager {
	return &watchManager{
		exact:     map[string]map[uint64]*watchSet{},
		recursive: map[string]map[uint64]uint64{},
		sinks:     map[uint64]Watcher{},
		paths:     map[uint64]map[string]struct{}{},
	}
}

// track records that session watches path.
func (wm *watchManager) track(session uint64, path string) {
	ps := wm.paths[session]
	if ps == nil {
		ps = map[string]struct{}{}
		wm.paths[session] = ps
	}
	ps[path] = struct{}{}
}

// untrack forgets path for session once it has no watch of any kind there.
func (wm *watchManager) untrack(session uint64, path string) {
	if _, ok := wm.exact[path][session]; ok {
		return
	}
	if _, ok := wm.recursive[path][session]; ok {
		return
	}
	if ps := wm.paths[session]; ps != nil {
		delete(ps, path)
		if len(ps) == 0 {
			delete(wm.paths, session)
		}
	}
}

// registerWith runs read under the watch lock and then records reg if the
// read set reg.keep.
func (wm *watchManager) registerWith(reg *registration, w Watcher, read func() (uint64, error)) error {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	zxid, err := read()
	if reg.keep {
		wm.addLocked(reg.session, reg.path, reg.kind, zxid, w)
	}
	return err
}

func (wm *watchManager) addLocked(session uint64, path string, kind grove.WatchKind, zxid uint64, w Watcher) {
	wm.sinks[session] = w
	wm.track(session, path)
	if kind == grove.WatchPersistentRecursive {
		m := wm.recursive[path]
		if m == nil {
			m = map[uint64]uint64{}
			wm.recursive[path] = m
		}
		// Keep the earliest pending registration: a later read must not
		// skip an event an earlier read is owed.
		if cur, ok := m[session]; !ok {
			wm.count++
			m[session] = zxid + 1
		} else if zxid+1 < cur {
			m[session] = zxid + 1
		}
		return
	}
	m := wm.exact[path]
	if m == nil {
		m = map[uint64]*watchSet{}
		wm.exact[path] = m
	}
	ws := m[session]
	if ws == nil {
		ws = &watchSet{}
		m[session] = ws
	}
	var f *uint64
	switch kind {
	case grove.WatchData:
		f = &ws.data
	case grove.WatchChildren:
		f = &ws.child
	default:
		f = &ws.persistent
	}
	switch {
	case *f == 0:
		wm.count++
		*f = zxid + 1
	case zxid+1 < *f:
		*f = zxid + 1 // keep the earliest pending registration
	}
}

// remove deletes a session's watches of kind on path (kind 0: all kinds).
// It returns grove.ErrNoWatcher if there was none.
func (wm *watchManager) remove(session uint64, path string, kind grove.WatchKind) error {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	removed := false
	if kind == 0 || kind == grove.WatchPersistentRecursive {
		if m := wm.recursive[path]; m != nil {
			if _, ok := m[session]; ok {
				delete(m, session)
				wm.count--
				removed = true
				if len(m) == 0 {
					delete(wm.recursive, path)
				}
			}
		}
	}
	if m := wm.exact[path]; m != nil {
		if ws := m[session]; ws != nil {
			clear := func(f *uint64) {
				if *f != 0 {
					*f = 0
					wm.count--
					removed = true
				}
			}
			switch kind {
			case 0:
				clear(&ws.data)
				clear(&ws.child)
				clear(&ws.persistent)
			case grove.WatchData:
				clear(&ws.data)
			case grove.WatchChildren:
				clear(&ws.child)
			case grove.WatchPersistent:
				clear(&ws.persistent)
			}
			if *ws == (watchSet{}) {
				delete(m, session)
				if len(m) == 0 {
					delete(wm.exact, path)
				}
			}
		}
	}
	wm.untrack(session, path)
	if !removed {
		return grove.ErrNoWatcher
	}
	return nil
}

// has reports whether session has a watch of kind (0: any) on path.
func (wm *watchManager) has(session uint64, path string, kind grove.WatchKind) bool {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	if kind == 0 || kind == grove.WatchPersistentRecursive {
		if _, ok := wm.recursive[path][session]; ok {
			return true
		}
	}
	ws := wm.exact[path][session]
	if ws == nil {
		return false
	}
	switch kind {
	case 0:
		return *ws != (watchSet{})
	case grove.WatchData:
		return ws.data != 0
	case grove.WatchChildren:
		return ws.child != 0
	case grove.WatchPersistent:
		return ws.persistent != 0
	}
	return false
}

// watching reports whether session has any watch.
func (wm *watchManager) watching(session uint64) bool {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	return len(wm.paths[session]) > 0
}

// removeSession drops every watch of a session.
func (wm *watchManager) removeSession(session uint64) {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	for path := range wm.paths[session] {
		if m := wm.exact[path]; m != nil {
			if ws := m[session]; ws != nil {
				for _, f := range []uint64{ws.data, ws.child, ws.persistent} {
					if f != 0 {
						wm.count--
					}
				}
				delete(m, session)
				if len(m) == 0 {
					delete(wm.exact, path)
				}
			}
		}
		if m := wm.recursive[path]; m != nil {
			if _, ok := m[session]; ok {
				delete(m, session)
				wm.count--
				if len(m) == 0 {
					delete(wm.recursive, path)
				}
			}
		}
	}
	delete(wm.paths, session)
	delete(wm.sinks, session)
}

// Count returns the number of registered watches.
func (wm *watchManager) size() int {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	return wm.count
}

// dispatch fires the watches matching events, in order, once per session
// per event; one-shot watches are removed as they fire.
func (wm *watchManager) dispatch(events []grove.Event) {
	if len(events) == 0 {
		return
	}
	wm.mu.Lock()
	defer wm.mu.Unlock()
	for _, ev := range events {
		wm.fireLocked(ev)
	}
}

func (wm *watchManager) fireLocked(ev grove.Event) {
	z := uint64(ev.Zxid)
	var targets []uint64
	hit := func(s uint64) {
		for _, t := range targets {
			if t == s {
				return
			}
		}
		targets = append(targets, s)
	}
	if m := wm.exact[ev.Path]; m != nil {
		for s, ws := range m {
			fire := func(f *uint64, oneShot bool) {
				if *f != 0 && z >= *f {
					hit(s)
					if oneShot {
						*f = 0
						wm.count--
					}
				}
			}
			switch ev.Type {
			case grove.EventNodeCreated, grove.EventNodeDataChanged:
				fire(&ws.data, true)
			case grove.EventNodeDeleted:
				fire(&ws.data, true)
				fire(&ws.child, true)
			case grove.EventNodeChildrenChanged:
				fire(&ws.child, true)
			}
			fire(&ws.persistent, false)
			if *ws == (watchSet{}) {
				delete(m, s)
				wm.untrack(s, ev.Path)
			}
		}
		if len(m) == 0 {
			delete(wm.exact, ev.Path)
		}
	}
	if ev.Type != grove.EventNodeChildrenChanged && len(wm.recursive) > 0 {
		for p := ev.Path; p != ""; p = grove.Parent(p) {
			for s, after := range wm.recursive[p] {
				if z >= after {
					hit(s)
				}
			}
		}
	}
	for _, s := range targets {
		if w := wm.sinks[s]; w != nil {
			w.Deliver(ev)
		}
	}
}

// beginInstall locks the manager for a snapshot install and lists every
// watched path. No watch can be registered until endInstall, so none reads
// the old state and misses the install's changes.
func (wm *watchManager) beginInstall() []string {
	wm.mu.Lock()
	paths := make([]string, 0, len(wm.exact)+len(wm.recursive))
	for p := range wm.exact {
		paths = append(paths, p)
	}
	for p := range wm.recursive {
		paths = append(paths, p)
	}
	return paths
}

// endInstall fires the install's events and unlocks the manager.
func (wm *watchManager) endInstall(events []grove.Event) {
	defer wm.mu.Unlock()
	for _, ev := range events {
		wm.fireLocked(ev)
	}
}

// pathState is what a snapshot install compares to derive watch events.
type pathState struct {
	exists       bool
	mzxid, pzxid int64
}

func readPathStates(tx *bbolt.Tx, paths []string) map[string]pathState {
	m := make(map[string]pathState, len(paths))
	for _, p := range paths {
		st, err := fsm.Exists(tx, p)
		if err == nil {
			m[p] = pathState{exists: true, mzxid: st.Mzxid, pzxid: st.Pzxid}
		} else {
			m[p] = pathState{}
		}
	}
	return m
}

// diffEvents turns before/after states of watched paths into the events a
// snapshot install caused. Changes below a recursively watched path are not
// seen; see doc.go.
func diffEvents(before, after map[string]pathState, zxid int64) []grove.Event {
	var evs []grove.Event
	for p, b := range before {
		a := after[p]
		switch {
		case b.exists && !a.exists:
			evs = append(evs, grove.Event{Type: grove.EventNodeDeleted, Path: p, Zxid: zxid})
		case !b.exists && a.exists:
			evs = append(evs, grove.Event{Type: grove.EventNodeCreated, Path: p, Zxid: zxid})
		case a.exists:
			if a.mzxid != b.mzxid {
				evs = append(evs, grove.Event{Type: grove.EventNodeDataChanged, Path: p, Zxid: zxid})
			}
			if a.pzxid != b.pzxid {
				evs = append(evs, grove.Event{Type: grove.EventNodeChildrenChanged, Path: p, Zxid: zxid})
			}
		}
	}
	return evs
}

// sessionsWithWatches lists the sessions that have watches here.
func (wm *watchManager) sessionsWithWatches() []uint64 {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	ids := make([]uint64, 0, len(wm.sinks))
	for id := range wm.sinks {
		ids = append(ids, id)
	}
	return ids
}
