package fsm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// applier applies the operations of one log entry through an overlay.
// Operations return a command.OpResult whose Code is the ZooKeeper error of a
// refused operation; their error return is reserved for storage failures.
type applier struct {
	st      *store
	ov      *overlay // the current operation's, or nil
	ovSpace overlay  // what ov points to: one overlay per applier, reset per use
	zxid    int64    // the entry's raft index
	now     int64    // the entry's time, ms
	session uint64   // the requesting session, for ephemeral owners
	ids     []grove.Identity
	events  []grove.Event
	acls    [][]grove.ACL // the ACL of each event's node (Outcome.EventACLs)
}

// specialPaths may never be deleted, as in ZooKeeper.
var specialPaths = map[string]bool{
	"/": true, "/zookeeper": true, "/zookeeper/quota": true, "/zookeeper/config": true,
}

// validPath reports whether path is a valid znode path of acceptable length.
func validPath(path string) bool {
	return len(path) <= maxPathLen && grove.ValidatePath(path) == nil
}

// event records a watch event of the entry and the ACL of its node.
func (a *applier) event(t grove.EventType, path string, acl []grove.ACL) {
	a.events = append(a.events, grove.Event{Type: t, Path: path, Zxid: a.zxid})
	a.acls = append(a.acls, acl)
}

// versionOK reports whether an expected version matches (-1 matches any).
func versionOK(expected, actual int32) bool { return expected == -1 || expected == actual }

// seqSuffix is the sequence suffix of a sequential create: the parent's
// count of child creates (node.seq), zero-padded to ten digits (more once
// it passes 10^10).
func seqSuffix(counter uint64) string {
	s := strconv.FormatUint(counter, 10)
	if len(s) < 10 {
		s = strings.Repeat("0", 10-len(s)) + s
	}
	return s
}

// parentOf returns the parent path of path as ZooKeeper finds it, by its
// last slash alone; ok is false for a path ZooKeeper refuses before it
// looks at the parent: no slash, a NUL byte, or too long to store.
func parentOf(path string) (parent string, ok bool) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 || strings.IndexByte(path, 0) >= 0 || len(path) > maxPathLen {
		return "", false
	}
	if i == 0 {
		return "/", true
	}
	return path[:i], true
}

// create applies a create, checking in ZooKeeper's order (measured against
// ZooKeeper 3.8): mode and TTL, a slash and no NUL in the path, ACL,
// parent existence, CREATE permission on the parent, the sequential name,
// the whole path's validity (so an invalid path under a missing parent is
// NoNode, as in ZooKeeper), existence, an ephemeral parent.
func (a *applier) create(op *grove.Op) (command.OpResult, error) {
	res := command.OpResult{Type: grove.OpCreate}
	mode := op.Mode
	if !mode.Valid() || (mode.IsTTL() && (op.TTL <= 0 || op.TTL > grove.MaxTTL)) {
		return fail(res, grove.CodeBadArguments)
	}
	parentPath, ok := parentOf(op.Path)
	if !ok {
		return fail(res, grove.CodeBadArguments)
	}
	acl, ok := fixupACL(op.ACL, a.ids)
	if !ok {
		return fail(res, grove.CodeInvalidACL)
	}
	parent, err := a.ov.get(parentPath)
	if err != nil || parent == nil {
		return fail2(res, grove.CodeNoNode, err)
	}
	if CheckACL(parent.acl, a.ids, grove.PermCreate) != nil {
		return fail(res, grove.CodeNoAuth)
	}
	path := op.Path
	if mode.IsSequential() {
		path += seqSuffix(parent.seq)
	}
	if !validPath(path) {
		return fail(res, grove.CodeBadArguments)
	}
	existing, err := a.ov.get(path)
	if err != nil || existing != nil {
		return fail2(res, grove.CodeNodeExists, err)
	}
	if parent.isEphemeral() {
		return fail(res, grove.CodeNoChildrenForEphemerals)
	}
	n := &node{
		czxid: a.zxid, mzxid: a.zxid, pzxid: a.zxid,
		ctime: a.now, mtime: a.now,
		mode: mode, acl: acl, data: op.Data, nullData: op.NullData,
	}
	switch {
	case mode.IsEphemeral():
		n.owner = int64(a.session) // session ids are raft indexes
		index(&a.ov.ephemerals, ephemeralKey(a.session, path), true)
	case mode.IsContainer():
		n.owner = grove.EphemeralOwnerContainer
		index(&a.ov.reap, []byte(path), true)
	case mode.IsTTL():
		n.ttl = op.TTL
		n.owner = grove.EphemeralOwnerTTLBit | op.TTL
		index(&a.ov.reap, []byte(path), true)
	}
	parent.cversion++
	parent.seq++
	parent.numChildren++
	parent.pzxid = a.zxid
	a.ov.put(parentPath, parent)
	a.ov.put(path, n)
	index(&a.ov.children, childKey(parentPath, grove.Base(path)), true)
	a.event(grove.EventNodeCreated, path, n.acl)
	a.event(grove.EventNodeChildrenChanged, parentPath, parent.acl)
	res.Path = path
	res.Stat = n.statPtr()
	return res, nil
}

// delete applies a delete, checking in ZooKeeper's order: a slash and no
// NUL in the path, not a special path, parent existence, DELETE permission
// on the parent, existence, version, children. Like ZooKeeper it does not
// validate the rest of the path: no node has an invalid one.
func (a *applier) delete(op *grove.Op) (command.OpResult, error) {
	res := command.OpResult{Type: grove.OpDelete}
	parentPath, ok := parentOf(op.Path)
	if !ok || specialPaths[op.Path] {
		return fail(res, grove.CodeBadArguments)
	}
	parent, err := a.ov.get(parentPath)
	if err != nil || parent == nil {
		return fail2(res, grove.CodeNoNode, err)
	}
	if CheckACL(parent.acl, a.ids, grove.PermDelete) != nil {
		return fail(res, grove.CodeNoAuth)
	}
	n, err := a.ov.get(op.Path)
	if err != nil || n == nil {
		return fail2(res, grove.CodeNoNode, err)
	}
	if !versionOK(op.Version, n.version) {
		return fail(res, grove.CodeBadVersion)
	}
	if n.numChildren > 0 {
		return fail(res, grove.CodeNotEmpty)
	}
	return res, a.removeNode(op.Path, n)
}

// removeNode deletes the existing node n at path without any check: the
// parent's child counter and pzxid move, the indexes forget the node, and
// NodeDeleted and NodeChildrenChanged fire.
func (a *applier) removeNode(path string, n *node) error {
	parentPath := grove.Parent(path)
	parent, err := a.ov.get(parentPath)
	if err != nil {
		return err
	}
	if parent == nil {
		return fmt.Errorf("fsm: parent of %q missing: %w", path, grove.ErrCorrupt)
	}
	parent.cversion++
	parent.numChildren--
	parent.pzxid = a.zxid
	a.ov.put(parentPath, parent)
	a.ov.remove(path)
	index(&a.ov.children, childKey(parentPath, grove.Base(path)), false)
	if n.isEphemeral() {
		index(&a.ov.ephemerals, ephemeralKey(uint64(n.owner), path), false)
	}
	if n.reapable() {
		index(&a.ov.reap, []byte(path), false)
	}
	a.event(grove.EventNodeDeleted, path, n.acl)
	a.event(grove.EventNodeChildrenChanged, parentPath, parent.acl)
	return nil
}

// setData applies a setData: path, existence, WRITE permission, version.
func (a *applier) setData(op *grove.Op) (command.OpResult, error) {
	res := command.OpResult{Type: grove.OpSet}
	if !validPath(op.Path) {
		return fail(res, grove.CodeBadArguments)
	}
	n, err := a.ov.get(op.Path)
	if err != nil || n == nil {
		return fail2(res, grove.CodeNoNode, err)
	}
	if CheckACL(n.acl, a.ids, grove.PermWrite) != nil {
		return fail(res, grove.CodeNoAuth)
	}
	if !versionOK(op.Version, n.version) {
		return fail(res, grove.CodeBadVersion)
	}
	n.version++
	n.mzxid = a.zxid
	n.mtime = a.now
	n.data, n.nullData = op.Data, op.NullData
	a.ov.put(op.Path, n)
	a.event(grove.EventNodeDataChanged, op.Path, n.acl)
	res.Stat = n.statPtr()
	return res, nil
}

// check applies a version check: path, existence, READ permission, version.
func (a *applier) check(op *grove.Op) (command.OpResult, error) {
	res := command.OpResult{Type: grove.OpCheck}
	if !validPath(op.Path) {
		return fail(res, grove.CodeBadArguments)
	}
	n, err := a.ov.get(op.Path)
	if err != nil || n == nil {
		return fail2(res, grove.CodeNoNode, err)
	}
	if CheckACL(n.acl, a.ids, grove.PermRead) != nil {
		return fail(res, grove.CodeNoAuth)
	}
	if !versionOK(op.Version, n.version) {
		return fail(res, grove.CodeBadVersion)
	}
	return res, nil
}

// setACL applies a setACL, checking in ZooKeeper's order: path, the new
// ACL, existence, ADMIN permission, ACL version. It fires no event.
func (a *applier) setACL(path string, acl []grove.ACL, version int32) (*command.Result, error) {
	if !validPath(path) {
		return &command.Result{Code: grove.CodeBadArguments}, nil
	}
	fixed, ok := fixupACL(acl, a.ids)
	if !ok {
		return &command.Result{Code: grove.CodeInvalidACL}, nil
	}
	n, err := a.ov.get(path)
	if err != nil {
		return nil, err
	}
	switch {
	case n == nil:
		return &command.Result{Code: grove.CodeNoNode}, nil
	case CheckACL(n.acl, a.ids, grove.PermAdmin) != nil:
		return &command.Result{Code: grove.CodeNoAuth}, nil
	case !versionOK(version, n.aversion):
		return &command.Result{Code: grove.CodeBadVersion}, nil
	}
	n.acl = fixed
	n.aversion++
	a.ov.put(path, n)
	return &command.Result{Stat: n.statPtr()}, nil
}

// runOp applies one operation of a multi (or a single write).
func (a *applier) runOp(op *grove.Op) (command.OpResult, error) {
	switch op.Type {
	case grove.OpCreate:
		return a.create(op)
	case grove.OpDelete:
		return a.delete(op)
	case grove.OpSet:
		return a.setData(op)
	case grove.OpCheck:
		return a.check(op)
	}
	return command.OpResult{Type: op.Type, Code: grove.CodeBadArguments}, nil
}

// fail returns res refused with code.
func fail(res command.OpResult, code grove.Code) (command.OpResult, error) {
	res.Code = code
	return res, nil
}

// fail2 returns a storage error if there is one, else res refused with code.
func fail2(res command.OpResult, code grove.Code, err error) (command.OpResult, error) {
	if err != nil {
		return command.OpResult{}, err
	}
	return fail(res, code)
}
