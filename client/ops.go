package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// ReadOption adjusts a read.
type ReadOption func(*ReadRequest)

// Linearizable makes a read a quorum barrier first: it sees every write
// acknowledged anywhere before it started. (ZooKeeper offers only sync
// followed by a read.)
func Linearizable() ReadOption { return func(r *ReadRequest) { r.Linearizable = true } }

// Create creates a znode and returns its path (with the sequence suffix for
// sequential modes). Errors: grove.ErrNodeExists, grove.ErrNoNode (no
// parent), grove.ErrNoChildrenForEphemerals, grove.ErrInvalidACL,
// grove.ErrNoAuth, grove.ErrBadArguments, grove.ErrTooLarge.
func (s *Session) Create(ctx context.Context, path string, data []byte, mode grove.CreateMode, acl []grove.ACL) (string, error) {
	p, _, err := s.create(ctx, path, data, mode, acl, 0)
	return p, pathErr("create", path, err)
}

// CreateTTL creates a TTL znode (mode grove.ModePersistentWithTTL or
// grove.ModePersistentSequentialWithTTL), deleted once it has had no
// children and no change for ttl.
func (s *Session) CreateTTL(ctx context.Context, path string, data []byte, mode grove.CreateMode, acl []grove.ACL, ttl time.Duration) (string, error) {
	p, _, err := s.create(ctx, path, data, mode, acl, ttl.Milliseconds())
	return p, pathErr("create", path, err)
}

// Create2 is Create that also returns the new node's Stat.
func (s *Session) Create2(ctx context.Context, path string, data []byte, mode grove.CreateMode, acl []grove.ACL) (string, grove.Stat, error) {
	p, st, err := s.create(ctx, path, data, mode, acl, 0)
	return p, st, pathErr("create", path, err)
}

func (s *Session) create(ctx context.Context, path string, data []byte, mode grove.CreateMode, acl []grove.ACL, ttl int64) (string, grove.Stat, error) {
	res, err := s.write(ctx, &command.Request{Op: command.OpCreate, Path: s.abs(path), Data: data, Mode: mode, ACL: acl, TTL: ttl})
	if err != nil {
		return "", grove.Stat{}, err
	}
	return s.rel(res.Path), statOf(res), nil
}

// Set replaces a znode's data if its version is version (-1: any) and
// returns the new Stat. Errors: grove.ErrNoNode, grove.ErrBadVersion,
// grove.ErrNoAuth, grove.ErrTooLarge.
func (s *Session) Set(ctx context.Context, path string, data []byte, version int32) (grove.Stat, error) {
	res, err := s.write(ctx, &command.Request{Op: command.OpSetData, Path: s.abs(path), Data: data, Version: version})
	if err != nil {
		return grove.Stat{}, pathErr("set", path, err)
	}
	return statOf(res), nil
}

// Delete deletes a znode if its version is version (-1: any). Errors:
// grove.ErrNoNode, grove.ErrBadVersion, grove.ErrNotEmpty, grove.ErrNoAuth.
func (s *Session) Delete(ctx context.Context, path string, version int32) error {
	_, err := s.write(ctx, &command.Request{Op: command.OpDelete, Path: s.abs(path), Version: version})
	return pathErr("delete", path, err)
}

// SetACL replaces a znode's ACL if its ACL version is version (-1: any).
func (s *Session) SetACL(ctx context.Context, path string, acl []grove.ACL, version int32) (grove.Stat, error) {
	res, err := s.write(ctx, &command.Request{Op: command.OpSetACL, Path: s.abs(path), ACL: acl, Version: version})
	if err != nil {
		return grove.Stat{}, pathErr("setACL", path, err)
	}
	return statOf(res), nil
}

// Multi applies ops atomically: all or none. On failure it returns the
// per-op results (the failing op carries its error, earlier ops nil, later
// ops grove.ErrRuntimeInconsistency) and the failing op's error.
func (s *Session) Multi(ctx context.Context, ops ...grove.Op) ([]grove.OpResult, error) {
	abs := make([]grove.Op, len(ops))
	for i, op := range ops {
		abs[i] = op
		abs[i].Path = s.abs(op.Path)
	}
	res, err := s.write(ctx, &command.Request{Op: command.OpMulti, Ops: abs})
	if res == nil {
		if err != nil && len(ops) > 0 {
			return nil, multiErr(ops, nil, err)
		}
	}
	var out []grove.OpResult
	if res != nil {
		out = make([]grove.OpResult, len(res.Multi))
		for i, r := range res.Multi {
			out[i] = grove.OpResult{Type: r.Type, Path: s.rel(r.Path), Stat: r.Stat, Err: grove.CodeError(r.Code)}
			if r.Path == "" {
				out[i].Path = ""
			}
		}
	}
	return out, multiErr(ops, out, err)
}

// multiErr wraps a Multi's error as the error of its failing op ("multi
// delete /a/b: ..."), or of the multi as a whole when no op failed alone
// (the session ended, say).
func multiErr(ops []grove.Op, res []grove.OpResult, err error) error {
	if err == nil {
		return nil
	}
	for i, r := range res {
		if r.Err != nil && !errors.Is(r.Err, grove.ErrRuntimeInconsistency) && i < len(ops) {
			return pathErr("multi "+ops[i].Type.String(), ops[i].Path, err)
		}
	}
	return fmt.Errorf("multi of %d ops: %w", len(ops), err)
}

func statOf(r *command.Result) grove.Stat {
	if r == nil || r.Stat == nil {
		return grove.Stat{}
	}
	return *r.Stat
}

// read runs one read in session order of what it has seen.
func (s *Session) read(ctx context.Context, r *ReadRequest, opts []ReadOption) (*ReadResult, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	r.Session, r.Identities, r.MinZxid = s.id, s.ids, s.lastZxid
	s.mu.Unlock()
	for _, o := range opts {
		o(r)
	}
	res, err := s.b.Read(ctx, r)
	if err == nil {
		s.mu.Lock()
		s.lastZxid = max(s.lastZxid, res.Zxid)
		s.mu.Unlock()
	}
	return res, err
}

// watchedRead runs a read that sets a one-shot watch and returns the
// watch's channel.
func (s *Session) watchedRead(ctx context.Context, r *ReadRequest, kind grove.WatchKind, opts []ReadOption) (*ReadResult, <-chan grove.Event, error) {
	r.Watch = true
	w := s.addOneShot(r.Path, kind)
	res, err := s.read(ctx, r, opts)
	ok := err == nil
	var zxid uint64
	if res != nil {
		zxid = res.Zxid
	}
	s.armOneShot(r.Path, kind, w, zxid, ok)
	if !ok {
		return nil, nil, err
	}
	return res, w.ch, err
}

// Get returns a znode's data and Stat. Errors: grove.ErrNoNode,
// grove.ErrNoAuth, grove.ErrBadArguments.
func (s *Session) Get(ctx context.Context, path string, opts ...ReadOption) ([]byte, grove.Stat, error) {
	res, err := s.read(ctx, &ReadRequest{Kind: ReadGet, Path: s.abs(path)}, opts)
	if err != nil {
		return nil, grove.Stat{}, pathErr("get", path, err)
	}
	return res.Data, res.Stat, nil
}

// GetW is Get that also sets a one-shot data watch: the channel delivers
// the next change of the node (data changed or deleted) and is closed.
func (s *Session) GetW(ctx context.Context, path string, opts ...ReadOption) ([]byte, grove.Stat, <-chan grove.Event, error) {
	res, ch, err := s.watchedRead(ctx, &ReadRequest{Kind: ReadGet, Path: s.abs(path)}, grove.WatchData, opts)
	if err != nil {
		return nil, grove.Stat{}, nil, pathErr("get", path, err)
	}
	return res.Data, res.Stat, ch, nil
}

// Exists reports whether a znode exists and returns its Stat.
func (s *Session) Exists(ctx context.Context, path string, opts ...ReadOption) (bool, grove.Stat, error) {
	res, err := s.read(ctx, &ReadRequest{Kind: ReadExists, Path: s.abs(path)}, opts)
	if err != nil {
		return false, grove.Stat{}, pathErr("exists", path, err)
	}
	return res.Exists, res.Stat, nil
}

// ExistsW is Exists that also sets a one-shot watch, also on a missing
// node: the channel delivers its creation, deletion or data change.
func (s *Session) ExistsW(ctx context.Context, path string, opts ...ReadOption) (bool, grove.Stat, <-chan grove.Event, error) {
	res, ch, err := s.watchedRead(ctx, &ReadRequest{Kind: ReadExists, Path: s.abs(path)}, grove.WatchData, opts)
	if err != nil {
		return false, grove.Stat{}, nil, pathErr("exists", path, err)
	}
	return res.Exists, res.Stat, ch, nil
}

// Children lists all children of a znode, sorted. For very large
// directories use ChildrenPage.
func (s *Session) Children(ctx context.Context, path string, opts ...ReadOption) ([]string, grove.Stat, error) {
	res, err := s.read(ctx, &ReadRequest{Kind: ReadChildren, Path: s.abs(path)}, opts)
	if err != nil {
		return nil, grove.Stat{}, pathErr("children", path, err)
	}
	return res.Names, res.Stat, nil
}

// ChildrenPage lists at most limit children sorted after the name after
// ("" from the start); more says whether names remain. A listing never
// fails because a directory is big: page through it.
func (s *Session) ChildrenPage(ctx context.Context, path, after string, limit int, opts ...ReadOption) (names []string, more bool, err error) {
	if limit <= 0 {
		return nil, false, pathErr("children", path, fmt.Errorf("client: page limit %d: %w", limit, grove.ErrBadArguments))
	}
	res, err := s.read(ctx, &ReadRequest{Kind: ReadChildren, Path: s.abs(path), After: after, Limit: limit}, opts)
	if err != nil {
		return nil, false, pathErr("children", path, err)
	}
	return res.Names, res.More, nil
}

// ChildrenW is Children that also sets a one-shot child watch: the channel
// delivers the next change to the set of children (or the node's deletion).
func (s *Session) ChildrenW(ctx context.Context, path string, opts ...ReadOption) ([]string, grove.Stat, <-chan grove.Event, error) {
	res, ch, err := s.watchedRead(ctx, &ReadRequest{Kind: ReadChildren, Path: s.abs(path)}, grove.WatchChildren, opts)
	if err != nil {
		return nil, grove.Stat{}, nil, pathErr("children", path, err)
	}
	return res.Names, res.Stat, ch, nil
}

// GetACL returns a znode's ACL and Stat.
func (s *Session) GetACL(ctx context.Context, path string) ([]grove.ACL, grove.Stat, error) {
	res, err := s.read(ctx, &ReadRequest{Kind: ReadACL, Path: s.abs(path)}, nil)
	if err != nil {
		return nil, grove.Stat{}, pathErr("getACL", path, err)
	}
	return res.ACL, res.Stat, nil
}

// CountDescendants returns the number of znodes below path.
func (s *Session) CountDescendants(ctx context.Context, path string) (int64, error) {
	res, err := s.read(ctx, &ReadRequest{Kind: ReadCount, Path: s.abs(path)}, nil)
	if err != nil {
		return 0, pathErr("countDescendants", path, err)
	}
	return res.Count, nil
}

// Ephemerals lists the session's ephemeral znodes under prefix.
func (s *Session) Ephemerals(ctx context.Context, prefix string) ([]string, error) {
	res, err := s.read(ctx, &ReadRequest{Kind: ReadEphemerals, Path: s.abs(prefix)}, nil)
	if err != nil {
		return nil, pathErr("ephemerals", prefix, err)
	}
	out := make([]string, len(res.Names))
	for i, p := range res.Names {
		out[i] = s.rel(p)
	}
	return out, nil
}

// Sync waits until the session's server has every write committed before
// the call: a quorum barrier.
func (s *Session) Sync(ctx context.Context) error {
	if err := s.alive(); err != nil {
		return err
	}
	idx, err := s.b.Sync(ctx)
	if err == nil {
		s.mu.Lock()
		s.lastZxid = max(s.lastZxid, idx)
		s.mu.Unlock()
	}
	return err
}

// AddAuth authenticates the session: scheme "digest" with "user:password".
// Its identities apply to every later request. Errors: grove.ErrAuthFailed.
func (s *Session) AddAuth(ctx context.Context, scheme string, cred []byte) error {
	if err := s.alive(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	id, err := s.b.Authenticate(ctx, scheme, cred)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.ids = append(append([]grove.Identity(nil), s.ids...), id)
	s.mu.Unlock()
	return nil
}
