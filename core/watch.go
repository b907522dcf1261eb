package core

import (
	"slices"
	"sync"

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
	ids     []grove.Identity // the watcher's identities: events only for nodes they may READ
	keep    bool             // set by the read: register only if the read succeeded
}

// watchSet is one session's watches on one path. A field is the zxid after
// which the watch fires (registration zxid + 1), or 0 when not set.
type watchSet struct {
	data, child, persistent uint64
	sink                    *sink
	// ids are the watcher's identities when it last set a watch here: it
	// gets an event only for a node they may READ (ZooKeeper 3.9.2 and
	// 3.8.4, CVE-2024-23944).
	ids []grove.Identity
}

// empty reports whether no watch of the set is set.
func (ws *watchSet) empty() bool { return ws.data == 0 && ws.child == 0 && ws.persistent == 0 }

// recWatch is one session's recursive watch on one path: it fires for
// changes after zxid after-1.
type recWatch struct {
	after uint64
	sink  *sink
	ids   []grove.Identity // as watchSet.ids: events only for readable nodes
}

// mayRead reports whether a persistent watcher with ids may see an event
// about a node with acl.
func mayRead(acl []grove.ACL, ids []grove.Identity) bool {
	return fsm.CheckACL(acl, ids, grove.PermRead) == nil
}

// sink is where one session's events go. Every watch entry of the session
// points at the same sink, so matching an event costs no lookup, and a
// re-attached session redirects all its watches by changing w (under the
// manager's lock).
type sink struct{ w Watcher }

// watchManager keeps every watch of this node and fires them as entries
// apply. One mutex guards it; registrations that come with a read hold it
// across the read so no change falls between the two.
type watchManager struct {
	mu        sync.Mutex
	exact     map[string]map[uint64]*watchSet // path → session → watches
	recursive map[string]map[uint64]recWatch  // path → session → watch
	sinks     map[uint64]*sink                // session → where its events go
	// paths indexes the paths each session watches, so closing a session
	// (in the apply path) costs its own watches, not every watch.
	paths map[uint64]map[string]struct{}
	count int

	// out holds the deliveries matched under mu and handed out after it
	// is released. Only the dispatching goroutine (the raft loop) uses it,
	// so it needs no lock of its own and its array is reused.
	out []delivery
}

func newWatchManager() *watchManager {
	return &watchManager{
		exact:     map[string]map[uint64]*watchSet{},
		recursive: map[string]map[uint64]recWatch{},
		sinks:     map[uint64]*sink{},
		paths:     map[uint64]map[string]struct{}{},
	}
}

// track records that session watches path. The index may keep paths whose
// one-shot watches have fired (matching an event does not pay to untrack
// each of its sessions); every reader of it checks, and track sweeps such
// stale paths out whenever a session's index doubles past 64, so it stays
// within twice the session's live paths (amortised O(1) per call).
func (wm *watchManager) track(session uint64, path string) {
	ps := wm.paths[session]
	if ps == nil {
		ps = map[string]struct{}{}
		wm.paths[session] = ps
	}
	if _, ok := ps[path]; ok {
		return
	}
	ps[path] = struct{}{}
	if n := len(ps); n >= 64 && n&(n-1) == 0 {
		for p := range ps {
			if !wm.watchesPath(session, p) {
				delete(ps, p)
			}
		}
	}
}

// watchesPath reports whether session has any watch on path.
func (wm *watchManager) watchesPath(session uint64, path string) bool {
	if _, ok := wm.exact[path][session]; ok {
		return true
	}
	_, ok := wm.recursive[path][session]
	return ok
}

// untrack forgets path for session once it has no watch of any kind there.
func (wm *watchManager) untrack(session uint64, path string) {
	if wm.watchesPath(session, path) {
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
		wm.addLocked(reg.session, reg.path, reg.kind, zxid, reg.ids, w)
	}
	return err
}

// bindLocked makes w the sink of every watch of session and returns it.
func (wm *watchManager) bindLocked(session uint64, w Watcher) *sink {
	sk := wm.sinks[session]
	if sk == nil {
		sk = &sink{}
		wm.sinks[session] = sk
	}
	sk.w = w
	return sk
}

// addLocked records a watch; ids are the watcher's identities, kept for
// the persistent kinds.
func (wm *watchManager) addLocked(session uint64, path string, kind grove.WatchKind, zxid uint64, ids []grove.Identity, w Watcher) {
	sk := wm.bindLocked(session, w)
	wm.track(session, path)
	if kind == grove.WatchPersistentRecursive {
		m := wm.recursive[path]
		if m == nil {
			m = map[uint64]recWatch{}
			wm.recursive[path] = m
		}
		// Keep the earliest pending registration: a later read must not
		// skip an event an earlier read is owed.
		if cur, ok := m[session]; !ok {
			wm.count++
			m[session] = recWatch{after: zxid + 1, sink: sk, ids: ids}
		} else {
			cur.ids = ids
			cur.after = min(cur.after, zxid+1)
			m[session] = cur
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
		ws = &watchSet{sink: sk}
		m[session] = ws
	}
	var f *uint64
	ws.ids = ids // the latest: a session's identities only grow
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
			if ws.empty() {
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

// watchedAt reports whether any session has a watch on path that
// ZooKeeper 3.8 keeps in the watch table of kind (its data table: data and
// exist watches; its child table: child watches; both: persistent and
// recursive watches; 0: either table).
func (wm *watchManager) watchedAt(path string, kind grove.WatchKind) bool {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	if len(wm.recursive[path]) > 0 {
		return true
	}
	for _, ws := range wm.exact[path] {
		if ws.persistent != 0 ||
			(kind != grove.WatchChildren && ws.data != 0) ||
			(kind != grove.WatchData && ws.child != 0) {
			return true
		}
	}
	return false
}

// pathsOf returns the paths session watches, sorted.
func (wm *watchManager) pathsOf(session uint64) []string {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	var out []string
	for p := range wm.paths[session] {
		if wm.watchesPath(session, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// watching reports whether session has any watch.
func (wm *watchManager) watching(session uint64) bool {
	wm.mu.Lock()
	defer wm.mu.Unlock()
	for p := range wm.paths[session] {
		if wm.watchesPath(session, p) {
			return true
		}
	}
	return false
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
// per event; one-shot watches are removed as they fire. The matching runs
// under the lock, the delivery after it is released, so a slow sink or a
// wide fan-out never holds up reads registering watches. Only the raft
// loop dispatches (here and in endInstall), so events still reach each
// sink in zxid order; and since the loop marks an index dispatched only
// after this returns, a read that registers a watch meanwhile sees itself
// behind and waits (see Node.view), so it cannot slip in between.
// acls[i] is the ACL of event i's node (fsm.Outcome.EventACLs); a missing
// one lets no persistent watcher see the event.
func (wm *watchManager) dispatch(events []grove.Event, acls [][]grove.ACL) {
	if len(events) == 0 {
		return
	}
	wm.mu.Lock()
	wm.matchAllLocked(events, acls)
	wm.mu.Unlock()
	wm.deliver()
}

// matchAllLocked matches each event with its ACL.
func (wm *watchManager) matchAllLocked(events []grove.Event, acls [][]grove.ACL) {
	for i, ev := range events {
		var acl []grove.ACL
		if i < len(acls) {
			acl = acls[i]
		}
		wm.matchLocked(ev, acl)
	}
}

// delivery is one event for one session's sink.
type delivery struct {
	session uint64
	w       Watcher
	ev      grove.Event
}

// deliver hands out the deliveries matched so far and empties the list. It
// runs on the loop, without the lock.
func (wm *watchManager) deliver() {
	for i, d := range wm.out {
		d.w.Deliver(d.ev)
		wm.out[i] = delivery{}
	}
	wm.out = wm.out[:0]
}

// matchLocked finds the sessions ev fires for, removes the one-shot watches
// it consumes, and queues one delivery per session in wm.out. A watch
// delivers only if its watcher may READ the node (acl): one-shot watches
// too, which the event consumes either way (ZooKeeper 3.8.4 and 3.9.2,
// CVE-2024-23944, measured against Debian's patched 3.8.0). It costs
// O(watchers of the path and of its ancestors), whatever their number.
func (wm *watchManager) matchLocked(ev grove.Event, acl []grove.ACL) {
	z := uint64(ev.Zxid)
	first := len(wm.out)
	if m := wm.exact[ev.Path]; m != nil {
		emptied := 0
		for s, ws := range m {
			oneShot, persistent := wm.fireSet(ws, ev.Type, z)
			if (oneShot || persistent) && mayRead(acl, ws.ids) {
				wm.out = append(wm.out, delivery{session: s, w: ws.sink.w, ev: ev})
			}
			if ws.empty() {
				emptied++
			}
		}
		// The sessions' path indexes keep ev.Path until track sweeps it.
		switch {
		case emptied == len(m):
			delete(wm.exact, ev.Path) // every watch fired: drop the set whole
		case emptied > 0:
			for s, ws := range m {
				if ws.empty() {
					delete(m, s)
				}
			}
		}
	}
	if ev.Type == grove.EventNodeChildrenChanged || len(wm.recursive) == 0 {
		return
	}
	// A session has one exact watch set per path, so the exact matches are
	// distinct; recursive watches on several ancestors, or beside an exact
	// watch, must not deliver twice. With a single source no set is needed.
	sources := 0
	if len(wm.out) > first {
		sources++
	}
	for p := ev.Path; p != ""; p = grove.Parent(p) {
		if len(wm.recursive[p]) > 0 {
			sources++
		}
	}
	var seen map[uint64]struct{}
	for p := ev.Path; p != ""; p = grove.Parent(p) {
		for s, rw := range wm.recursive[p] {
			if z < rw.after || !mayRead(acl, rw.ids) {
				continue
			}
			if sources == 1 {
				wm.out = append(wm.out, delivery{session: s, w: rw.sink.w, ev: ev})
				continue
			}
			if seen == nil {
				seen = make(map[uint64]struct{}, len(wm.out)-first+len(wm.recursive[p]))
				for _, d := range wm.out[first:] {
					seen[d.session] = struct{}{}
				}
			}
			if _, dup := seen[s]; dup {
				continue
			}
			seen[s] = struct{}{}
			wm.out = append(wm.out, delivery{session: s, w: rw.sink.w, ev: ev})
		}
	}
}

// fireSet reports whether a one-shot watch of ws, and whether its
// persistent watch, fires for an event of type t at zxid z, and clears the
// one-shot watches that fire.
func (wm *watchManager) fireSet(ws *watchSet, t grove.EventType, z uint64) (oneShotHit, persistentHit bool) {
	fire := func(f *uint64, oneShot bool) {
		if *f != 0 && z >= *f {
			if oneShot {
				oneShotHit = true
				*f = 0
				wm.count--
			} else {
				persistentHit = true
			}
		}
	}
	switch t {
	case grove.EventNodeCreated, grove.EventNodeDataChanged:
		fire(&ws.data, true)
	case grove.EventNodeDeleted:
		fire(&ws.data, true)
		fire(&ws.child, true)
	case grove.EventNodeChildrenChanged:
		fire(&ws.child, true)
	}
	fire(&ws.persistent, false)
	return oneShotHit, persistentHit
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

// endInstall fires the install's events and unlocks the manager; the
// events are delivered after the unlock, as dispatch does.
func (wm *watchManager) endInstall(events []grove.Event, acls [][]grove.ACL) {
	wm.matchAllLocked(events, acls)
	wm.mu.Unlock()
	wm.deliver()
}

// pathState is what a snapshot install compares to derive watch events.
type pathState struct {
	exists       bool
	mzxid, pzxid int64
	acl          []grove.ACL
}

func readPathStates(tx fsm.Tx, paths []string) map[string]pathState {
	m := make(map[string]pathState, len(paths))
	for _, p := range paths {
		st, err := fsm.Exists(tx, p)
		acl, _, aerr := fsm.ACLOf(tx, p)
		if err == nil && aerr == nil {
			m[p] = pathState{exists: true, mzxid: st.Mzxid, pzxid: st.Pzxid, acl: acl}
		} else {
			m[p] = pathState{}
		}
	}
	return m
}

// diffEvents turns before/after states of watched paths into the events a
// snapshot install caused. Changes below a recursively watched path are not
// seen; see doc.go.
// Each event comes with its node's ACL (a deleted node's as it was).
func diffEvents(before, after map[string]pathState, zxid int64) ([]grove.Event, [][]grove.ACL) {
	var evs []grove.Event
	var acls [][]grove.ACL
	add := func(t grove.EventType, p string, acl []grove.ACL) {
		evs = append(evs, grove.Event{Type: t, Path: p, Zxid: zxid})
		acls = append(acls, acl)
	}
	for p, b := range before {
		a := after[p]
		switch {
		case b.exists && !a.exists:
			add(grove.EventNodeDeleted, p, b.acl)
		case !b.exists && a.exists:
			add(grove.EventNodeCreated, p, a.acl)
		case a.exists:
			if a.mzxid != b.mzxid {
				add(grove.EventNodeDataChanged, p, a.acl)
			}
			if a.pzxid != b.pzxid {
				add(grove.EventNodeChildrenChanged, p, a.acl)
			}
		}
	}
	return evs, acls
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
