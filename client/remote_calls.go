package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/wire"
)

// start registers a request and sends it on the attached connection (if
// none, the reconnection sends it). decode runs on the reply.
func (r *remote) start(t wire.Type, body any, decode func([]byte) (uint64, error)) (*call, error) {
	msg, err := wire.Append(nil, t, 0, body)
	if err != nil {
		return nil, err
	}
	c := &call{typ: t, msg: msg, done: make(chan struct{}), decode: decode}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.released:
		return nil, grove.ErrSessionClosed
	case r.expired:
		return nil, grove.ErrSessionExpired
	case r.maxFrame > 0 && len(msg)+2 > r.maxFrame:
		return nil, fmt.Errorf("client: %s request of %d bytes, the server takes at most %d: %w", t, len(msg), r.maxFrame, grove.ErrTooLarge)
	}
	r.xid++
	c.xid = r.xid
	binary.BigEndian.PutUint64(msg[1:9], c.xid)
	r.calls[c.xid] = c
	if r.cur != nil {
		r.cur.send(msg)
	}
	return c, nil
}

// wait waits for c's answer. A request given up on is forgotten unless
// keep (a write stays, to be resent after a reconnect: later writes of the
// session depend on it).
func (r *remote) wait(ctx context.Context, c *call, keep bool) error {
	select {
	case <-c.done:
		if c.resent && c.typ == wire.TRemoveWatches && errors.Is(c.err, grove.ErrNoWatcher) {
			return nil // the first send removed it
		}
		return c.err
	case <-ctx.Done():
		if !keep {
			r.mu.Lock()
			delete(r.calls, c.xid)
			r.mu.Unlock()
		}
		return ctx.Err()
	case <-r.life.Done():
		return grove.ErrSessionClosed
	}
}

// do runs one request to its answer.
func (r *remote) do(ctx context.Context, t wire.Type, body any, decode func([]byte) (uint64, error)) error {
	c, err := r.start(t, body, decode)
	if err != nil {
		return err
	}
	return r.wait(ctx, c, false)
}

// remotePending is a write sent and not yet answered.
type remotePending struct {
	r   *remote
	c   *call
	res command.Result
}

func (p *remotePending) Wait(ctx context.Context) (*command.Result, error) {
	if err := p.r.wait(ctx, p.c, true); err != nil {
		return nil, err
	}
	return &p.res, nil
}

// Cancel stops nobody: the write stays queued for resending, so the
// session's later writes are not held behind a gap.
func (p *remotePending) Cancel() {}

func (r *remote) Begin(ctx context.Context, req *command.Request) (Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	body := *req
	body.Identities = nil // the server uses the connection's own
	p := &remotePending{r: r}
	c, err := r.start(wire.TWrite, &body, func(b []byte) (uint64, error) {
		if err := wire.DecodeBody(b, &p.res); err != nil {
			return 0, err
		}
		return p.res.Zxid, nil
	})
	if err != nil {
		return nil, err
	}
	p.c = c
	return p, nil
}

func (r *remote) Read(ctx context.Context, rr *ReadRequest) (*ReadResult, error) {
	var res wire.ReadResult
	key := watchKey{path: rr.Path, kind: grove.WatchData}
	if rr.Kind == ReadChildren {
		key.kind = grove.WatchChildren
	}
	err := r.do(ctx, wire.TRead, &wire.Read{
		Kind: uint8(rr.Kind), Path: rr.Path, After: rr.After, Limit: rr.Limit,
		MinZxid: rr.MinZxid, Linearizable: rr.Linearizable, Watch: rr.Watch,
	}, func(b []byte) (uint64, error) {
		if err := wire.DecodeBody(b, &res); err != nil {
			return 0, err
		}
		if rr.Watch {
			// In the reader, in order with the events: an event that fires
			// this watch comes after this reply.
			r.mu.Lock()
			r.watches[key] = rr.Kind != ReadExists || res.Exists
			r.mu.Unlock()
		}
		return res.Zxid, nil
	})
	if err != nil {
		return nil, err
	}
	return &ReadResult{Data: res.Data, Stat: res.Stat, Exists: res.Exists, Names: res.Names,
		More: res.More, ACL: res.ACL, Count: res.Count, Zxid: res.Zxid}, nil
}

func (r *remote) Sync(ctx context.Context) (uint64, error) {
	var z wire.Zxid
	err := r.do(ctx, wire.TSync, nil, func(b []byte) (uint64, error) {
		err := wire.DecodeBody(b, &z)
		return z.Zxid, err
	})
	return z.Zxid, err
}

// errNoDeadline answers a keep-alive the server could not confirm with a
// leader in time; the session's deadline stays as it was.
var errNoDeadline = errors.New("client: keep-alive not confirmed by a leader")

func (r *remote) KeepAlive(ctx context.Context, _ uint64) (time.Duration, error) {
	var left wire.Left
	err := r.do(ctx, wire.TPing, nil, func(b []byte) (uint64, error) {
		return 0, wire.DecodeBody(b, &left)
	})
	if err != nil {
		return 0, err
	}
	if left.LeftMs <= 0 {
		return 0, errNoDeadline
	}
	return time.Duration(left.LeftMs) * time.Millisecond, nil
}

func (r *remote) AddWatch(ctx context.Context, _ uint64, path string, kind grove.WatchKind, _ []grove.Identity) error {
	key := watchKey{path: path, kind: kind}
	r.mu.Lock()
	_, had := r.watches[key]
	r.watches[key] = false
	r.mu.Unlock()
	err := r.do(ctx, wire.TAddWatch, &wire.Watch{Path: path, Kind: kind}, nil)
	if err != nil && !had {
		r.mu.Lock()
		delete(r.watches, key)
		r.mu.Unlock()
	}
	return err
}

func (r *remote) RemoveWatches(ctx context.Context, _ uint64, path string, kind grove.WatchKind) error {
	r.mu.Lock()
	for k := range r.watches {
		if k.path == path && (kind == 0 || k.kind == kind) {
			delete(r.watches, k)
		}
	}
	r.mu.Unlock()
	return r.do(ctx, wire.TRemoveWatches, &wire.Watch{Path: path, Kind: kind}, nil)
}

func (r *remote) Authenticate(ctx context.Context, scheme string, cred []byte) (grove.Identity, error) {
	var id grove.Identity
	err := r.do(ctx, wire.TAuth, &wire.Auth{Scheme: scheme, Cred: cred}, func(b []byte) (uint64, error) {
		return 0, wire.DecodeBody(b, &id)
	})
	if err != nil {
		return id, err
	}
	r.mu.Lock()
	r.auths = append(r.auths, authCred{scheme: scheme, cred: append([]byte(nil), cred...)})
	r.mu.Unlock()
	return id, nil
}

// Release ends the backend: the connection closes, goroutines end, calls
// still waiting fail with grove.ErrSessionClosed.
func (r *remote) Release(uint64) { r.shutdown() }

func (r *remote) shutdown() {
	r.mu.Lock()
	r.released = true
	cur := r.cur
	r.cur = nil
	r.mu.Unlock()
	r.cancel()
	if cur != nil {
		cur.close()
	}
	r.wg.Wait()
}

// links reports the connection's state changes to the Session.
func (r *remote) links() <-chan State { return r.linkc }

// gone is closed when the cluster said the session expired.
func (r *remote) gone() <-chan struct{} { return r.gonec }
