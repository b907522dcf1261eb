package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/internal/command"
)

// Session opens a client session on this node in process: the same
// *client.Session type a remote client gets, so recipes and user code do
// not care which they have. The session ends when the node stops.
func (n *Node) Session(ctx context.Context, opts ...client.Option) (*client.Session, error) {
	return client.New(ctx, &embedded{n: n}, opts...)
}

// embedded is the in-process client.Backend of a Node.
type embedded struct {
	n *Node

	// mu guards sinks.
	mu    sync.Mutex
	sinks map[uint64]Watcher
}

var _ client.Backend = (*embedded)(nil)

func (e *embedded) OpenSession(ctx context.Context, timeout time.Duration, onEvent func(grove.Event)) (uint64, []byte, time.Duration, error) {
	info, err := e.n.CreateSession(ctx, timeout)
	if err != nil {
		return 0, nil, 0, err
	}
	e.mu.Lock()
	if e.sinks == nil {
		e.sinks = map[uint64]Watcher{}
	}
	e.sinks[info.ID] = WatcherFunc(onEvent)
	e.mu.Unlock()
	return info.ID, info.Password, info.Timeout, nil
}

func (e *embedded) sink(session uint64) Watcher {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sinks[session]
}

func (e *embedded) Begin(ctx context.Context, req *command.Request) (client.Pending, error) {
	return e.n.Begin(ctx, req)
}

func (e *embedded) Read(ctx context.Context, r *client.ReadRequest) (*client.ReadResult, error) {
	var w Watcher
	if r.Watch {
		if w = e.sink(r.Session); w == nil {
			return nil, fmt.Errorf("core: session %x has no event sink here: %w", r.Session, grove.ErrSessionClosed)
		}
	}
	return e.n.ServeRead(ctx, r, w)
}

// ServeRead serves a client read: r.Kind picks the call, r.Watch sets its
// one-shot watch with events going to w. Errors are reduced to the sentinel
// of their code (what a remote client gets), so every front end reports
// them alike.
func (n *Node) ServeRead(ctx context.Context, r *client.ReadRequest, w Watcher) (*client.ReadResult, error) {
	rd := Read{Session: r.Session, Identities: r.Identities, MinZxid: r.MinZxid, Linearizable: r.Linearizable}
	if r.Watch {
		if w == nil {
			return nil, fmt.Errorf("core: a watched read needs a watcher: %w", grove.ErrBadArguments)
		}
		rd.Watch = w
	}
	res := &client.ReadResult{}
	var err error
	switch r.Kind {
	case client.ReadGet:
		res.Data, res.Stat, res.Zxid, err = n.Get(ctx, rd, r.Path)
	case client.ReadExists:
		res.Stat, res.Zxid, err = n.Exists(ctx, rd, r.Path)
		res.Exists = err == nil
		if errors.Is(err, grove.ErrNoNode) {
			err = nil
		}
	case client.ReadChildren:
		res.Names, res.Stat, res.More, res.Zxid, err = n.Children(ctx, rd, r.Path, r.After, r.Limit)
	case client.ReadACL:
		res.ACL, res.Stat, res.Zxid, err = n.GetACL(ctx, rd, r.Path)
	case client.ReadCount:
		res.Count, res.Zxid, err = n.CountDescendants(ctx, rd, r.Path)
	case client.ReadEphemerals:
		res.Names, res.Zxid, err = n.Ephemerals(ctx, rd, r.Path)
	default:
		return nil, fmt.Errorf("core: read kind %d: %w", r.Kind, grove.ErrBadRequest)
	}
	return res, wireError(err)
}

// wireError reduces an error to what a remote client would get: the
// sentinel of its code (context and node errors pass through), so embedded
// and remote sessions report errors alike.
func wireError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if c := grove.ErrorCode(err); c != grove.CodeSystemError {
		return grove.CodeError(c)
	}
	return err
}

func (e *embedded) Sync(ctx context.Context) (uint64, error) { return e.n.Sync(ctx) }

func (e *embedded) KeepAlive(ctx context.Context, session uint64) (time.Duration, error) {
	return e.n.KeepAlive(ctx, session)
}

func (e *embedded) AddWatch(_ context.Context, session uint64, path string, kind grove.WatchKind, ids []grove.Identity) error {
	w := e.sink(session)
	if w == nil {
		return fmt.Errorf("core: session %x has no event sink here: %w", session, grove.ErrSessionClosed)
	}
	_, err := e.n.AddWatch(session, path, kind, ids, w)
	return wireError(err)
}

func (e *embedded) RemoveWatches(_ context.Context, session uint64, path string, kind grove.WatchKind) error {
	return e.n.RemoveWatches(session, path, kind)
}

func (e *embedded) Authenticate(_ context.Context, scheme string, cred []byte) (grove.Identity, error) {
	return e.n.Authenticate(scheme, cred)
}

func (e *embedded) Release(session uint64) {
	e.mu.Lock()
	delete(e.sinks, session)
	e.mu.Unlock()
	e.n.DropWatches(session)
}
