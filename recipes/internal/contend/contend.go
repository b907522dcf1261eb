package contend

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
)

// Node is one contender node.
type Node struct {
	Name  string // the name in the directory, e.g. "lock-0000000007"
	Path  string
	Seq   uint64 // the sequence suffix: the contenders' order
	Czxid int64  // the creation zxid: a token monotonic in Seq order
}

// SeqOf parses the 10-digit sequence suffix of a sequential node's name.
func SeqOf(name string) (uint64, bool) {
	if len(name) < 10 {
		return 0, false
	}
	n, err := strconv.ParseUint(name[len(name)-10:], 10, 64)
	return n, err == nil
}

// EnsurePath creates path and its missing parents as persistent nodes.
func EnsurePath(ctx context.Context, s *client.Session, path string) error {
	if ok, _, err := s.Exists(ctx, path); err != nil || ok {
		return err
	}
	var parts []string
	for p := path; p != "/"; p = grove.Parent(p) {
		parts = append(parts, p)
	}
	for _, p := range slices.Backward(parts) {
		if _, err := s.Create(ctx, p, nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil && !errors.Is(err, grove.ErrNodeExists) {
			return err
		}
	}
	return nil
}

// Create creates an ephemeral sequential node dir/prefix<seq> holding data,
// creating dir and its missing parents (persistent) only when the create
// finds dir missing: a contender on an existing dir pays one round trip,
// not an existence check first. The create runs to its end even if ctx
// ends first (a session's write that was sent may still apply); in that
// case Create returns ctx's error
// and the node, once made, is deleted by a goroutine the session owns —
// no orphan, and no goroutine outliving the session's Close.
func Create(ctx context.Context, s *client.Session, dir, prefix string, data []byte) (Node, error) {
	type result struct {
		n   Node
		err error
	}
	done := make(chan result, 1)
	if !s.Go(func(life context.Context) {
		create := func() (string, grove.Stat, error) {
			return s.Create2(life, dir+"/"+prefix, data, grove.ModeEphemeralSequential, grove.OpenACLUnsafe)
		}
		p, st, err := create()
		if errors.Is(err, grove.ErrNoNode) {
			if err = EnsurePath(life, s, dir); err == nil {
				p, st, err = create()
			}
		}
		var n Node
		if err == nil {
			n = Node{Name: grove.Base(p), Path: p, Czxid: st.Czxid}
			n.Seq, _ = SeqOf(n.Name)
		}
		done <- result{n, err}
	}) {
		return Node{}, s.Err()
	}
	select {
	case r := <-done:
		return r.n, r.err
	case <-ctx.Done():
		Abandon(s, done, func(r result) (string, bool) { return r.n.Path, r.err == nil })
		return Node{}, ctx.Err()
	}
}

// Abandon hands the outcome of a write its caller stopped waiting for to a
// goroutine the session owns: once the outcome arrives on done, the node
// made (made reports its path and whether the write succeeded) is deleted.
// If the session has ended there is nothing to do: the node was ephemeral.
func Abandon[R any](s *client.Session, done <-chan R, made func(R) (string, bool)) {
	s.Go(func(life context.Context) {
		select {
		case r := <-done:
			if path, ok := made(r); ok {
				Delete(s, path)
			}
		case <-life.Done():
		}
	})
}

// Bound returns a context that also ends when the session does. Call
// cancel when done with it.
func Bound(parent context.Context, s *client.Session) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(s.Context(), cancel)
	return ctx, func() { stop(); cancel() }
}

// Go runs f in a goroutine s owns (Session.Close waits for it) with a
// context that ends when ctx or the session does. It reports false, and
// does not run f, if the session has ended.
func Go(ctx context.Context, s *client.Session, f func(ctx context.Context)) bool {
	return s.Go(func(context.Context) {
		bctx, cancel := Bound(ctx, s)
		defer cancel()
		f(bctx)
	})
}

// DeleteLater deletes a contender node in a goroutine the session owns
// (Delete's bounds apply): for a node that must not outlive a failed wait
// or a release whose delete failed. With the session ended there is
// nothing to do: the node was ephemeral.
func DeleteLater(s *client.Session, path string) {
	s.Go(func(context.Context) { Delete(s, path) })
}

// Delete removes a contender node, ignoring a node already gone. It gives
// up when the session ends (the node is ephemeral: it goes with it) or
// after twice the session timeout.
func Delete(s *client.Session, path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.Timeout())
	defer cancel()
	ctx, cancelB := Bound(ctx, s)
	defer cancelB()
	_ = s.Delete(ctx, path, -1)
}

// List returns the contenders of dir in sequence order, keeping names
// that start with one of prefixes (none: all).
func List(ctx context.Context, s *client.Session, dir string, prefixes ...string) ([]Node, error) {
	names, _, err := s.Children(ctx, dir)
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(names))
	for _, name := range names {
		seq, ok := SeqOf(name)
		if !ok || (len(prefixes) > 0 && !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) })) {
			continue
		}
		out = append(out, Node{Name: name, Path: dir + "/" + name, Seq: seq})
	}
	slices.SortFunc(out, func(a, b Node) int { return cmpU(a.Seq, b.Seq) })
	return out, nil
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// WaitGone returns once path does not exist: at once if it is missing,
// else when its deletion event arrives (one watch on this one node: no
// herd).
func WaitGone(ctx context.Context, s *client.Session, path string) error {
	for {
		ok, _, ch, err := s.ExistsW(ctx, path)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		select {
		case ev, open := <-ch:
			if !open {
				return s.Err()
			}
			if ev.Type == grove.EventNodeDeleted {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.Done():
			return s.Err()
		}
	}
}

// WaitBefore waits until no node of before exists any more, watching only
// the nearest one at a time. Nodes before a contender can only go (later
// ones get higher sequence numbers), so no list is needed after the first.
func WaitBefore(ctx context.Context, s *client.Session, before []Node) error {
	for i := len(before) - 1; i >= 0; i-- {
		if err := WaitGone(ctx, s, before[i].Path); err != nil {
			return err
		}
	}
	return nil
}

// Hold watches a node its owner holds and returns a channel closed the
// moment the hold may be gone: the node is deleted, the session ends, or
// the session's deadline passes with no keep-alive having extended it (the
// cluster may have expired it). stop ends the watching and waits for it;
// the goroutines doing it belong to the session, so its Close waits for
// them too.
func Hold(s *client.Session, path string) (lost <-chan struct{}, stop func()) {
	lc := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan struct{})
	watching := Go(ctx, s, func(ctx context.Context) { // the node's deletion (or a failure to keep watching it)
		defer close(gone)
		_ = WaitGone(ctx, s, path)
	})
	if !watching || !s.Go(func(context.Context) { defer close(lc); watchDeadline(ctx, s, gone) }) {
		cancel()
		if watching {
			<-gone
		}
		close(lc)
		return lc, func() {}
	}
	return lc, func() { cancel(); <-lc; <-gone }
}

// watchDeadline returns when the session's deadline passes unextended, the
// node is gone, the session ends or ctx does.
func watchDeadline(ctx context.Context, s *client.Session, gone <-chan struct{}) {
	for {
		left := time.Until(s.Deadline())
		if left <= 0 {
			return
		}
		t := time.NewTimer(left)
		select {
		case <-t.C:
		case <-gone:
			t.Stop()
			return
		case <-s.Done():
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
