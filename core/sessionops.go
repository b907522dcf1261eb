package core

import (
	"context"
	"fmt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/fsm"
)

// AddWatch sets a persistent watch (kind grove.WatchPersistent) or a
// persistent recursive one (grove.WatchPersistentRecursive) for session on
// path. It stays until removed or the session ends, and fires for every
// change after the zxid returned, of a node ids may READ (ZooKeeper 3.9.2
// semantics: a recursive watch does not reveal the names of unreadable
// nodes). Events go to w (see Watcher). On an existing node ids cannot READ
// it fails with grove.ErrNoAuth, as ZooKeeper's addWatch does.
func (n *Node) AddWatch(session uint64, path string, kind grove.WatchKind, ids []grove.Identity, w Watcher) (uint64, error) {
	if err := grove.ValidatePath(path); err != nil {
		return 0, err
	}
	if kind != grove.WatchPersistent && kind != grove.WatchPersistentRecursive {
		return 0, fmt.Errorf("core: AddWatch kind %v: %w", kind, grove.ErrBadArguments)
	}
	var zxid uint64
	reg := &registration{session: session, path: path, kind: kind, ids: ids}
	err := n.watches.registerWith(reg, w, func() (uint64, error) {
		zxid = n.applied.Load()
		return zxid, n.readState(func(tx fsm.Tx) error {
			acl, exists, err := fsm.ACLOf(tx, path)
			switch {
			case err != nil:
				return err
			case exists && !mayRead(acl, ids):
				return fmt.Errorf("core: addWatch %s: %w", path, grove.ErrNoAuth)
			}
			reg.keep = true
			return nil
		})
	})
	return zxid, err
}

// RemoveWatches removes session's watches of kind on path; kind 0 removes
// every kind. It returns grove.ErrNoWatcher if there was none.
func (n *Node) RemoveWatches(session uint64, path string, kind grove.WatchKind) error {
	return n.watches.remove(session, path, kind)
}

// DropWatches forgets every watch of a session on this node, as when its
// connection to this node closes (the client re-registers elsewhere).
func (n *Node) DropWatches(session uint64) {
	n.watches.removeSession(session)
}

// WatchCount returns the number of watches registered on this node.
func (n *Node) WatchCount() int { return n.watches.size() }

// Authenticate turns credentials for scheme into the identity a session
// gains by them. Scheme "digest" takes "user:password"; the operator's
// super digest (Config.SuperDigest) yields the "super" identity. Other
// schemes return grove.ErrAuthFailed.
func (n *Node) Authenticate(scheme string, cred []byte) (grove.Identity, error) {
	if scheme != "digest" {
		return grove.Identity{}, fmt.Errorf("core: auth scheme %q: %w", scheme, grove.ErrAuthFailed)
	}
	id, err := grove.ParseDigestAuth(string(cred))
	if err != nil {
		return grove.Identity{}, err
	}
	if n.cfg.SuperDigest != "" && id.ID == n.cfg.SuperDigest {
		return grove.Identity{Scheme: "super", ID: ""}, nil
	}
	return id, nil
}

// CloseSession closes a session as its request seq (it must follow the
// session's earlier writes): its ephemeral znodes are deleted atomically.
// Closing a session that is already gone is not an error.
func (n *Node) CloseSession(ctx context.Context, session, seq uint64) error {
	res, err := n.Submit(ctx, &Request{Session: session, Seq: seq, Op: command.OpCloseSession})
	if err != nil {
		return err
	}
	if res.Code != grove.CodeOK && res.Code != grove.CodeSessionExpired {
		return grove.CodeError(res.Code)
	}
	n.watches.removeSession(session)
	return nil
}
