package zkwire

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/command"
)

// invalidMode is a create mode no server accepts (BadArguments before any
// other check).
const invalidMode grove.CreateMode = -1

// decodeOp reads the record of one write op (top level or in a multi).
func decodeOp(d *decoder, op int32) (grove.Op, bool) {
	switch op {
	case opCreate, opCreate2, opCreateContainer, opCreateTTL:
		o := grove.Op{Type: grove.OpCreate, Path: d.string(), Data: d.buffer(), ACL: d.acls()}
		o.NullData = o.Data == nil // length -1: null, kept apart from empty
		o.Mode = grove.CreateMode(d.int32())
		if op == opCreateTTL {
			o.TTL = d.int64()
		}
		return o, true
	case opDelete:
		return grove.Op{Type: grove.OpDelete, Path: d.string(), Version: d.int32()}, true
	case opSetData:
		o := grove.Op{Type: grove.OpSet, Path: d.string(), Data: d.buffer(), Version: d.int32()}
		o.NullData = o.Data == nil
		return o, true
	case opCheck:
		return grove.Op{Type: grove.OpCheck, Path: d.string(), Version: d.int32()}, true
	}
	return grove.Op{}, false
}

// createAsZooKeeper gives a create sent with opcode op the node mode
// ZooKeeper 3.8 gives it when the opcode and the mode in its flags
// disagree (no common client sends such a pair, but a hand-made one must
// not make Grove differ), measured against ZooKeeper 3.8. At the top level
// the opcode decides: createContainer makes a container whatever the mode
// (a sequential one Grove cannot make, so it refuses it), create and
// create2 never make a container (a persistent node instead), and
// createTTL refuses a TTL of 0 or more with a mode that has none, as it
// refuses a bad mode, first (a negative one it ignores). In a multi the
// mode decides, as ZooKeeper rebuilds each op from its flags. A TTL mode
// sent without a TTL (not through createTTL) is BadArguments at the top
// level and fails a whole multi as malformed (ZooKeeper fails it in its
// request pipeline).
func createAsZooKeeper(op int32, o *grove.Op, inMulti bool) (malformed bool) {
	if o.Type != grove.OpCreate {
		return false
	}
	if op != opCreateTTL && o.Mode.IsTTL() {
		return inMulti
	}
	if op == opCreateTTL && !o.Mode.IsTTL() {
		if o.TTL >= 0 && !inMulti {
			o.Mode = invalidMode
		}
		o.TTL = 0
		return false
	}
	if inMulti || !o.Mode.Valid() {
		return false
	}
	switch {
	case op == opCreateContainer && o.Mode.IsSequential():
		o.Mode = invalidMode
	case op == opCreateContainer:
		o.Mode = grove.ModeContainer
	case o.Mode.IsContainer():
		o.Mode = grove.ModePersistent
	}
	return false
}

// beginWrite decodes a write and hands it to the node in session order. A
// write that does not decode takes its number as a refusal, so the
// session's order has no gap.
func (c *conn) beginWrite(it *item) error {
	d := decoder{b: it.body}
	req := &command.Request{Session: uint64(c.session), Identities: c.ids}
	switch it.op {
	case opSetACL:
		req.Op, req.Path, req.ACL, req.Version = command.OpSetACL, d.string(), d.acls(), d.int32()
	case opMulti:
		req.Op = command.OpMulti
		for d.err == nil {
			typ, done, _ := d.int32(), d.bool(), d.int32()
			if done || d.err != nil {
				break
			}
			o, ok := decodeOp(&d, typ)
			if !ok || createAsZooKeeper(typ, &o, true) {
				d.fail("multi op of type " + itoa(typ))
				break
			}
			req.Ops = append(req.Ops, o)
			it.ops = append(it.ops, typ)
		}
	default:
		o, _ := decodeOp(&d, it.op)
		createAsZooKeeper(it.op, &o, false)
		req.Path, req.Data, req.ACL, req.Mode, req.TTL, req.Version = o.Path, o.Data, o.ACL, o.Mode, o.TTL, o.Version
		req.NullData = o.NullData
		switch o.Type {
		case grove.OpCreate:
			req.Op = command.OpCreate
		case grove.OpDelete:
			req.Op = command.OpDelete
		case grove.OpSet:
			req.Op = command.OpSetData
		case grove.OpCheck:
			req.Op = command.OpCheck
		}
	}
	c.seq++
	req.Seq = c.seq
	if d.err != nil {
		req = &command.Request{Session: req.Session, Seq: req.Seq, Op: command.OpReject, Code: grove.CodeMarshallingError}
	}
	p, err := c.n.BeginOrReject(c.Ctx, req)
	if err != nil {
		return err
	}
	it.Pending, it.req = p, req
	return nil
}

// Answer runs one request (connpipe.Codec) and returns its reply frame and, for a read, the
// zxid of the state it read (0 if none). An error means the connection must
// end unanswered (the node stopped or the connection closed): the client
// sees a connection loss, as with ZooKeeper.
func (c *conn) Answer(it *item) ([]byte, uint64, error) {
	if it.Reply != nil {
		return it.Reply, 0, nil
	}
	if it.Pending != nil {
		res, err := it.Pending.Wait(c.Ctx)
		if err != nil {
			return nil, 0, err
		}
		if a := c.s.cfg.Audit; a != nil { // no address string per write unless auditing
			a.Request("zookeeper", c.nc.RemoteAddr().String(), it.req, res)
		}
		c.lastZxid.Store(int64(res.Zxid))
		return c.writeReply(it, res), 0, nil
	}
	var body func(e *encoder)
	read, err := c.read(c.Ctx, it, &body)
	if err != nil && (errors.Is(err, grove.ErrStopped) || c.Ctx.Err() != nil) {
		return nil, 0, err
	}
	zxid := read
	if zxid == 0 {
		zxid = c.n.AppliedIndex()
	}
	c.lastZxid.Store(int64(zxid))
	code := grove.ErrorCode(err)
	if err == nil {
		code = 0
	}
	return frame(func(e *encoder) {
		e.replyHeader(it.xid, int64(zxid), zkCode(code))
		if err == nil && body != nil {
			body(e)
		}
	}), read, nil
}

// writeReply encodes the answer to a write.
func (c *conn) writeReply(it *item, res *command.Result) []byte {
	code := zkCode(res.Code)
	if it.op == opMulti && len(res.Multi) == 0 && res.Code != 0 {
		// Refused as a whole (session expired, malformed): no per-op results.
		return frame(func(e *encoder) { e.replyHeader(it.xid, int64(res.Zxid), code) })
	}
	if it.op == opMulti {
		return frame(func(e *encoder) {
			e.replyHeader(it.xid, int64(res.Zxid), 0) // per-op codes carry the failure
			for i, r := range res.Multi {
				if res.Code != 0 || r.Code != 0 {
					e.int32(opError)
					e.bool(false)
					e.int32(int32(zkCode(r.Code)))
					e.int32(int32(zkCode(r.Code)))
					continue
				}
				op := opCheck
				if i < len(it.ops) && i < len(it.req.Ops) {
					op = multiResultType(it.ops[i], it.req.Ops[i].Mode)
				}
				e.int32(op)
				e.bool(false)
				e.int32(0)
				writeOpResult(e, op, r.Path, r.Stat)
			}
			e.int32(-1)
			e.bool(true)
			e.int32(-1)
		})
	}
	return frame(func(e *encoder) {
		e.replyHeader(it.xid, int64(res.Zxid), code)
		if code == 0 {
			writeOpResult(e, it.op, res.Path, res.Stat)
		}
	})
}

// multiResultType is the type ZooKeeper 3.8 labels a multi's result of op
// with (measured): a create of a container or TTL node (mode) answers as a
// create2 (path and Stat), any other create as a create (the path),
// whatever opcode carried it; the Java client refuses any other label.
func multiResultType(op int32, mode grove.CreateMode) int32 {
	switch op {
	case opCreate, opCreate2, opCreateContainer, opCreateTTL:
		if mode.IsContainer() || mode.IsTTL() {
			return opCreate2
		}
		return opCreate
	}
	return op
}

// writeOpResult encodes the success record of a write op.
func writeOpResult(e *encoder, op int32, path string, st *grove.Stat) {
	var zero grove.Stat
	if st == nil {
		st = &zero
	}
	switch op {
	case opCreate:
		e.string(path)
	case opCreate2, opCreateContainer, opCreateTTL:
		e.string(path)
		e.stat(st)
	case opSetData, opSetACL:
		e.stat(st)
	}
}

// read serves a non-write request; *body encodes its success record.
func (c *conn) read(ctx context.Context, it *item, body *func(e *encoder)) (uint64, error) {
	d := decoder{b: it.body}
	rd := core.Read{Session: uint64(c.session), Identities: it.ids}
	watch := func(w bool) {
		if w {
			rd.Watch = c
		}
	}
	malformed := func() (uint64, error) { return 0, grove.ErrMarshalling }
	switch it.op {
	case opExists:
		path := d.string()
		watch(d.bool())
		if d.err != nil {
			return malformed()
		}
		if strings.IndexByte(path, 0) >= 0 {
			return 0, grove.ErrBadArguments // the one path check of a ZooKeeper read
		}
		path, found := readPath(path, &rd)
		if !found {
			return 0, grove.ErrNoNode
		}
		st, z, err := c.n.Exists(ctx, rd, path)
		*body = func(e *encoder) { e.stat(&st) }
		return z, err
	case opGetData:
		path := d.string()
		watch(d.bool())
		if d.err != nil {
			return malformed()
		}
		path, found := readPath(path, &rd)
		if !found {
			return 0, grove.ErrNoNode
		}
		data, st, z, err := c.n.Get(ctx, rd, path)
		*body = func(e *encoder) { e.buffer(data); e.stat(&st) } // nil data: null, as stored
		return z, err
	case opGetChildren, opGetChildren2:
		path := d.string()
		watch(d.bool())
		if d.err != nil {
			return malformed()
		}
		path, found := readPath(path, &rd)
		if !found {
			return 0, grove.ErrNoNode
		}
		names, st, _, z, err := c.n.Children(ctx, rd, path, "", 0)
		*body = func(e *encoder) {
			e.strings(names)
			if it.op == opGetChildren2 {
				e.stat(&st)
			}
		}
		return z, err
	case opGetACL:
		path := d.string()
		if d.err != nil {
			return malformed()
		}
		path, found := readPath(path, &rd)
		if !found {
			return 0, grove.ErrNoNode
		}
		acl, st, z, err := c.n.GetACL(ctx, rd, path)
		*body = func(e *encoder) { e.acls(acl); e.stat(&st) }
		return z, err
	case opSync:
		path := d.string()
		if d.err != nil {
			return malformed()
		}
		z, err := c.n.Sync(ctx)
		*body = func(e *encoder) { e.string(path) }
		return z, err
	case opGetEphemerals:
		prefix := d.string()
		if d.err != nil {
			return malformed()
		}
		paths, z, err := c.n.Ephemerals(ctx, rd, prefix)
		*body = func(e *encoder) { e.strings(paths) }
		return z, err
	case opGetAllChildrenNum:
		path := d.string()
		if d.err != nil {
			return malformed()
		}
		path, found := readPath(path, &rd)
		if !found {
			return 0, grove.ErrNoNode
		}
		n, z, err := c.n.CountDescendants(ctx, rd, path)
		*body = func(e *encoder) { e.int32(int32(n)) }
		return z, err
	case opAddWatch:
		path, mode := d.string(), d.int32()
		if d.err != nil {
			return malformed()
		}
		kind := grove.WatchPersistent
		switch mode {
		case 0:
		case 1:
			kind = grove.WatchPersistentRecursive
		default:
			return 0, grove.ErrBadArguments
		}
		_, err := c.n.AddWatch(uint64(c.session), path, kind, it.ids, c)
		if err == nil {
			// ZooKeeper answers addWatch with an ErrorResponse record (its
			// int error code, 0): the Java client reads those 4 bytes and
			// drops the connection without them.
			*body = func(e *encoder) { e.int32(0) }
		}
		return 0, err
	case opCheckWatches, opRemoveWatches:
		path, typ := d.string(), d.int32()
		if d.err != nil {
			return malformed()
		}
		kind, ok := watchKind(typ)
		if !ok {
			return 0, grove.ErrBadArguments
		}
		if it.op == opCheckWatches {
			if !c.n.WatchedAt(path, kind) {
				return 0, grove.ErrNoWatcher
			}
			return 0, nil
		}
		return 0, c.n.RemoveWatches(uint64(c.session), path, kind)
	case opSetWatches, opSetWatches2:
		return c.setWatches(ctx, &d, it.op == opSetWatches2, it.ids)
	case opWhoAmI:
		ids := it.ids
		*body = func(e *encoder) {
			e.int32(int32(len(ids)))
			for _, id := range ids {
				user := id.ID
				if id.Scheme == "digest" || id.Scheme == "super" {
					user, _, _ = strings.Cut(user, ":")
				}
				e.string(id.Scheme)
				e.string(user)
			}
		}
		return 0, nil
	case opMultiRead:
		return c.multiRead(ctx, &d, rd, body)
	}
	return 0, grove.ErrUnimplemented // reconfig, sasl, deleteContainer, unknown opcodes
}

// readPath maps the path of a read to the node ZooKeeper reads. It does
// not validate the paths of reads: it looks them up, so an invalid one
// finds nothing (NoNode; exists: missing), not BadArguments as Grove's core
// answers, and "" finds the root (ZooKeeper keeps the root under ""). A
// watch set through "" never fires on ZooKeeper (events name "/"), so none
// is set.
func readPath(path string, rd *core.Read) (string, bool) {
	if path == "" {
		rd.Watch = nil
		return "/", true
	}
	return path, grove.ValidatePath(path) == nil
}

// setWatches moves a reconnected client's watches here; changes after its
// relative zxid fire once, now.
func (c *conn) setWatches(ctx context.Context, d *decoder, v2 bool, ids []grove.Identity) (uint64, error) {
	since := d.int64()
	var specs []core.WatchSpec
	add := func(kind grove.WatchKind, existed bool) {
		for _, p := range d.strings() {
			specs = append(specs, core.WatchSpec{Path: p, Kind: kind, Existed: existed})
		}
	}
	add(grove.WatchData, true)      // data watches: set by getData on an existing node
	add(grove.WatchData, false)     // exist watches: set by exists on a missing node
	add(grove.WatchChildren, false) // child watches
	if v2 {
		add(grove.WatchPersistent, false)
		add(grove.WatchPersistentRecursive, false)
	}
	if d.err != nil {
		return 0, grove.ErrMarshalling
	}
	return c.n.RestoreWatches(ctx, uint64(c.session), uint64(max(since, 0)), specs, ids, c)
}

// multiRead runs getData and getChildren ops and answers each, failed ones
// with their error, in one reply.
func (c *conn) multiRead(ctx context.Context, d *decoder, rd core.Read, body *func(e *encoder)) (uint64, error) {
	type result struct {
		op    int32
		code  grove.Code
		data  []byte
		names []string
		stat  grove.Stat
	}
	var results []result
	var zxid uint64
	for d.err == nil {
		typ, done, _ := d.int32(), d.bool(), d.int32()
		if done || d.err != nil {
			break
		}
		path := d.string()
		w := d.bool()
		if d.err != nil {
			break
		}
		r := result{op: typ}
		rd.Watch = nil
		if w {
			rd.Watch = c
		}
		path, found := readPath(path, &rd)
		var err error
		var z uint64
		switch {
		case typ != opGetData && typ != opGetChildren:
			return 0, grove.ErrMarshalling
		case !found:
			err = grove.ErrNoNode
		case typ == opGetData:
			r.data, r.stat, z, err = c.n.Get(ctx, rd, path)
		default:
			r.names, _, _, z, err = c.n.Children(ctx, rd, path, "", 0)
		}
		if err != nil {
			if errors.Is(err, grove.ErrStopped) || ctx.Err() != nil {
				return 0, err
			}
			r.code = zkCode(grove.ErrorCode(err))
		}
		zxid = max(zxid, z)
		results = append(results, r)
	}
	if d.err != nil {
		return 0, grove.ErrMarshalling
	}
	*body = func(e *encoder) {
		for _, r := range results {
			if r.code != 0 {
				e.int32(opError)
				e.bool(false)
				e.int32(int32(r.code))
				e.int32(int32(r.code))
				continue
			}
			e.int32(r.op)
			e.bool(false)
			e.int32(0)
			if r.op == opGetData {
				e.buffer(r.data)
				e.stat(&r.stat)
			} else {
				e.strings(r.names)
			}
		}
		e.int32(-1)
		e.bool(true)
		e.int32(-1)
	}
	return zxid, nil
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }
