package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/recipes/internal/contend"
)

// Codec turns values into znode data and back.
type Codec[T any] interface {
	Marshal(v T) ([]byte, error)
	Unmarshal(data []byte, v *T) error
}

// JSON is the default Codec.
type JSON[T any] struct{}

// Marshal encodes v as JSON.
func (JSON[T]) Marshal(v T) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into v.
func (JSON[T]) Unmarshal(data []byte, v *T) error { return json.Unmarshal(data, v) }

// ErrConflict is returned by Set when the stored version is not the one
// given: someone else wrote in between. Read again and retry.
var ErrConflict = errors.New("config: version conflict")

// Versioned is a value with the znode version it was read at.
type Versioned[T any] struct {
	Value   T
	Version int32 // the znode's data version: +1 per committed Set
	Zxid    int64 // the zxid of the change that wrote it
}

// Value is one configuration value at a path.
type Value[T any] struct {
	s     *client.Session
	path  string
	codec Codec[T]
}

// Option tunes a Value or a Tree; the recipes take options the way the
// client does.
type Option[T any] func(*options[T])

type options[T any] struct{ codec Codec[T] }

// WithCodec encodes values with codec instead of JSON.
func WithCodec[T any](codec Codec[T]) Option[T] { return func(o *options[T]) { o.codec = codec } }

func buildOptions[T any](opts []Option[T]) options[T] {
	o := options[T]{codec: JSON[T]{}}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// New returns the value at path (JSON-encoded unless WithCodec).
func New[T any](s *client.Session, path string, opts ...Option[T]) *Value[T] {
	return &Value[T]{s: s, path: path, codec: buildOptions(opts).codec}
}

// Get reads the value; grove.ErrNoNode if it was never set.
func (v *Value[T]) Get(ctx context.Context) (Versioned[T], error) {
	data, st, err := v.s.Get(ctx, v.path)
	if err != nil {
		return Versioned[T]{}, err
	}
	return v.decode(data, st)
}

func (v *Value[T]) decode(data []byte, st grove.Stat) (Versioned[T], error) {
	out := Versioned[T]{Version: st.Version, Zxid: st.Mzxid}
	if err := v.codec.Unmarshal(data, &out.Value); err != nil {
		return out, fmt.Errorf("config: decode %s (version %d): %w", v.path, st.Version, err)
	}
	return out, nil
}

// Set writes the value if the stored version is still version (-1: any)
// and returns the new version; ErrConflict if another write came first. A
// Set with version -1 of a value never set creates it (and its parents) at
// version 0.
func (v *Value[T]) Set(ctx context.Context, val T, version int32) (int32, error) {
	data, err := v.codec.Marshal(val)
	if err != nil {
		return 0, err
	}
	st, err := v.s.Set(ctx, v.path, data, version)
	switch {
	case err == nil:
		return st.Version, nil
	case errors.Is(err, grove.ErrBadVersion):
		return 0, ErrConflict
	case errors.Is(err, grove.ErrNoNode) && version == -1:
		if err := contend.EnsurePath(ctx, v.s, grove.Parent(v.path)); err != nil {
			return 0, err
		}
		if _, err := v.s.Create(ctx, v.path, data, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
			if errors.Is(err, grove.ErrNodeExists) {
				return v.Set(ctx, val, version)
			}
			return 0, err
		}
		return 0, nil
	}
	return 0, err
}

// Watch delivers the value now and then every newer version the watch
// sees, in increasing version order (versions written faster than they can
// be read are skipped, never reordered; the last committed one always
// arrives). The channel closes when ctx ends or the session does.
func (v *Value[T]) Watch(ctx context.Context) (<-chan Versioned[T], error) {
	w, err := v.s.AddWatch(ctx, v.path, false)
	if err != nil {
		return nil, err
	}
	out := make(chan Versioned[T])
	started := contend.Go(ctx, v.s, func(ctx context.Context) {
		defer close(out)
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.s.Timeout())
			defer cancel()
			_ = w.Remove(rctx)
		}()
		lastZxid := int64(-1)
		for {
			cur, err := v.Get(ctx)
			switch {
			case err == nil && (cur.Zxid > lastZxid):
				// A delete and re-create restarts versions: the zxid orders.
				select {
				case out <- cur:
					lastZxid = cur.Zxid
				case <-ctx.Done():
					return
				}
			case err != nil && !errors.Is(err, grove.ErrNoNode):
				if ctx.Err() != nil || v.s.Err() != nil {
					return
				}
			}
			select {
			case _, ok := <-w.C:
				if !ok {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	})
	if !started {
		_ = w.Remove(ctx)
		return nil, v.s.Err()
	}
	return out, nil
}

// Tree is a view of every value under a prefix, kept current by one
// recursive watch.
type Tree[T any] struct {
	s      *client.Session
	prefix string
	codec  Codec[T]
	w      *client.Watch

	mu      sync.Mutex
	entries map[string]Versioned[T] // path relative to prefix → value
	asOf    int64                   // zxid of the newest change applied
	changed chan struct{}           // closed and replaced on every change
	err     error
	done    chan struct{}
}

// NewTree loads every value under prefix and keeps the view current until
// ctx ends or Close.
func NewTree[T any](ctx context.Context, s *client.Session, prefix string, opts ...Option[T]) (*Tree[T], error) {
	if err := contend.EnsurePath(ctx, s, prefix); err != nil {
		return nil, err
	}
	w, err := s.AddWatch(ctx, prefix, true)
	if err != nil {
		return nil, err
	}
	t := &Tree[T]{s: s, prefix: prefix, codec: buildOptions(opts).codec, w: w, entries: map[string]Versioned[T]{},
		changed: make(chan struct{}), done: make(chan struct{})}
	if _, err := t.load(ctx); err != nil {
		_ = w.Remove(ctx)
		return nil, err
	}
	if !s.Go(t.follow) {
		_ = w.Remove(ctx)
		return nil, s.Err()
	}
	return t, nil
}

// stamp is what a pass over the subtree saw of one node: any change to
// the node's data, or to its set of children, changes it.
type stamp struct{ mzxid, pzxid int64 }

// load reads the whole subtree into the view and returns the stamps of
// every node read (the watch is already set, so no change after a read is
// missed: it arrives as an event and is read again).
func (t *Tree[T]) load(ctx context.Context) (map[string]stamp, error) {
	stamps := map[string]stamp{}
	var walk func(path string) error
	walk = func(path string) error {
		data, st, err := t.s.Get(ctx, path)
		if errors.Is(err, grove.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		stamps[path] = stamp{st.Mzxid, st.Pzxid}
		if path != t.prefix {
			t.apply(path, data, st)
		}
		names, _, err := t.s.Children(ctx, path)
		if errors.Is(err, grove.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := walk(grove.Join(path, n)); err != nil {
				return err
			}
		}
		return nil
	}
	return stamps, walk(t.prefix)
}

func (t *Tree[T]) key(path string) string {
	return strings.TrimPrefix(strings.TrimPrefix(path, t.prefix), "/")
}

// apply records a read of path (mu not held).
func (t *Tree[T]) apply(path string, data []byte, st grove.Stat) {
	var v Versioned[T]
	v.Version, v.Zxid = st.Version, st.Mzxid
	if len(data) > 0 && t.codec.Unmarshal(data, &v.Value) != nil {
		return // not a value of this tree's type (an intermediate node)
	}
	if len(data) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.key(path)
	if old, ok := t.entries[k]; ok && old.Zxid >= v.Zxid {
		return
	}
	t.entries[k] = v
	t.asOf = max(t.asOf, st.Mzxid)
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *Tree[T]) remove(path string, zxid int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.entries[t.key(path)]; !ok {
		return
	}
	delete(t.entries, t.key(path))
	t.asOf = max(t.asOf, zxid)
	close(t.changed)
	t.changed = make(chan struct{})
}

// follow applies the watch's events until the watch ends; it runs in a
// goroutine the session owns, so it ends by the session's Close at the
// latest.
func (t *Tree[T]) follow(life context.Context) {
	defer close(t.done)
	for ev := range t.w.C {
		switch ev.Type {
		case grove.EventNodeDeleted:
			t.remove(ev.Path, ev.Zxid)
		case grove.EventNodeCreated, grove.EventNodeDataChanged:
			data, st, err := t.s.Get(life, ev.Path)
			if errors.Is(err, grove.ErrNoNode) {
				t.remove(ev.Path, ev.Zxid)
			} else if err == nil {
				t.apply(ev.Path, data, st)
			} else {
				t.mu.Lock()
				t.err = err
				t.mu.Unlock()
				return
			}
		}
	}
}

// Get returns the value at key (a path relative to the prefix).
func (t *Tree[T]) Get(key string) (Versioned[T], bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.entries[key]
	return v, ok
}

// Keys returns the keys in the view, sorted.
func (t *Tree[T]) Keys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.entries))
	for k := range t.entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Changed returns a channel closed at the next change of the view.
func (t *Tree[T]) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// Snapshot returns a consistent copy of the whole subtree, read fresh,
// and the newest zxid in it. It reads the subtree until two passes in a
// row saw the same state of every node (data and set of children, by
// zxid): the values then all held at one moment between the two passes.
func (t *Tree[T]) Snapshot(ctx context.Context) (map[string]Versioned[T], int64, error) {
	if err := t.s.Sync(ctx); err != nil {
		return nil, 0, err
	}
	pass := func() (*Tree[T], map[string]stamp, error) {
		fresh := &Tree[T]{s: t.s, prefix: t.prefix, codec: t.codec, entries: map[string]Versioned[T]{}, changed: make(chan struct{})}
		st, err := fresh.load(ctx)
		return fresh, st, err
	}
	_, prev, err := pass()
	for err == nil {
		var cur *Tree[T]
		var stamps map[string]stamp
		cur, stamps, err = pass()
		if err == nil && maps.Equal(prev, stamps) {
			var newest int64
			for _, s := range stamps {
				newest = max(newest, s.mzxid, s.pzxid)
			}
			return cur.entries, newest, nil
		}
		prev = stamps
	}
	return nil, 0, err
}

// Err returns why the view stopped following, if it did.
func (t *Tree[T]) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Close stops following.
func (t *Tree[T]) Close(ctx context.Context) error {
	err := t.w.Remove(ctx)
	<-t.done
	return err
}
