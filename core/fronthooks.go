package core

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/fsm"
)

// CatchUp is what a client front end does before it accepts a client that
// has seen zxid: it waits up to wait for this node to apply it and returns
// grove.ErrServerBehind if it did not, so the client tries a server that
// is not behind it.
func (n *Node) CatchUp(ctx context.Context, zxid uint64, wait time.Duration) error {
	if zxid <= n.AppliedIndex() {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := n.WaitApplied(wctx, zxid); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: the client has seen zxid %d, this server applied %d", grove.ErrServerBehind, zxid, n.AppliedIndex())
	}
	return nil
}

// Reattach returns the session a client re-attaches to with its id and
// password, or grove.ErrSessionExpired if this node (caught up with the
// client, see CatchUp) does not know it or the password is wrong.
func (n *Node) Reattach(id uint64, password []byte) (SessionInfo, error) {
	info, ok, err := n.SessionInfo(id)
	switch {
	case err != nil:
		return info, err
	case !ok:
		return info, fmt.Errorf("%w: session %x", grove.ErrSessionExpired, id)
	case subtle.ConstantTimeCompare(info.Password, password) != 1:
		return info, fmt.Errorf("%w: session %x: wrong password", grove.ErrSessionExpired, id)
	}
	return info, nil
}

// Fence starts a new run of request sequence numbers for a session whose
// client does not number its own requests (ZooKeeper's protocol), after it
// re-attached here: no request of its earlier connections that has not
// applied yet will apply after the fence. It returns the fence's sequence
// number; number the session's next requests from it plus one.
func (n *Node) Fence(ctx context.Context, session uint64) (uint64, error) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	tag := hex.EncodeToString(nonce[:])
	for {
		var last uint64
		err := n.readState(func(tx fsm.Tx) error {
			s, ok, err := fsm.SessionByID(tx, session)
			if err == nil && !ok {
				err = fmt.Errorf("%w: session %x", grove.ErrSessionExpired, session)
			}
			last = s.LastSeq
			return err
		})
		if err != nil {
			return 0, err
		}
		seq := (last>>32 + 1) << 32
		res, err := n.Submit(ctx, &command.Request{Session: session, Seq: seq, Op: command.OpFence, Path: tag})
		if err != nil {
			return 0, err
		}
		switch {
		case res.Code != grove.CodeOK && res.Code != grove.CodeStaleRequest:
			return 0, grove.CodeError(res.Code)
		case res.Code == grove.CodeOK && res.Path == tag:
			return seq, nil
		}
		// Another connection of the session fenced at this number (or
		// past it) first: fence again above it.
	}
}

// BeginOrReject is Begin for a client front end that pipelines a session's
// writes: a write the node refuses before raft (too large, bad arguments)
// still takes its place in the session's order, as a logged failure with
// the refusal's code, so the writes pipelined behind it are not held up by
// a gap in the sequence. Only a stopping node or an ended ctx fail it.
func (n *Node) BeginOrReject(ctx context.Context, req *Request) (*Pending, error) {
	p, err := n.Begin(ctx, req)
	if err == nil || req.Seq == 0 || req.Session == 0 || errors.Is(err, grove.ErrStopped) || ctx.Err() != nil {
		return p, err
	}
	rp, rerr := n.Begin(ctx, &command.Request{Session: req.Session, Seq: req.Seq, Op: command.OpReject, Code: grove.ErrorCode(err)})
	if rp != nil {
		rp.rejection = err
	}
	return rp, rerr
}

// WatchedAt answers ZooKeeper's checkWatches as ZooKeeper 3.8 does: true
// if any session (not only the asking one) has a watch on exactly path in
// the watch table of kind (data: data, exist, persistent and recursive
// watches; children: child, persistent and recursive watches; 0: either).
// That every 3.8 release answers for all sessions is a quirk clients may
// rely on (the Java client's removeWatches asks it), so it is kept.
func (n *Node) WatchedAt(path string, kind grove.WatchKind) bool {
	return n.watches.watchedAt(path, kind)
}

// WatchedPaths returns the paths session has a watch on here, sorted (the
// wchc and wchp four-letter words list them).
func (n *Node) WatchedPaths(session uint64) []string { return n.watches.pathsOf(session) }

// HasWatches reports whether session has any watch here.
func (n *Node) HasWatches(session uint64) bool { return n.watches.watching(session) }
