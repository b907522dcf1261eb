package zkdiff

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ACL is one access control entry as the protocol carries it.
type ACL struct {
	Perms  int32
	Scheme string
	ID     string
}

func (a ACL) String() string { return fmt.Sprintf("%s:%s:%d", a.Scheme, a.ID, a.Perms) }

// digestID is the id of a digest ACL for user:password, as ZooKeeper
// derives it (the base64 SHA-1 of the whole credential).
func digestID(user, password string) string {
	sum := sha1.Sum([]byte(user + ":" + password))
	return user + ":" + base64.StdEncoding.EncodeToString(sum[:])
}

// Pseudo-opcodes: what the tester does to a session rather than send.
const (
	// codeReconnect drops the session's connection and re-attaches.
	codeReconnect int32 = 1000
	// codeNewSession closes the session and opens a new one in its place.
	codeNewSession int32 = 1001
)

// Op is one client operation of a sequence. Paths starting with "~" are
// relative to the run's own root (each run and each shrink attempt uses a
// fresh one); others are sent as they are.
type Op struct {
	Session int
	Code    int32
	Path    string
	Data    []byte // nil is jute's null
	Version int32
	Flags   int32
	TTL     int64
	ACL     []ACL
	Watch   bool
	Mode    int32  // addWatch mode; removeWatches/checkWatches type
	Scheme  string // auth
	Sub     []Op   // multi and multiRead
}

var opNames = map[int32]string{
	opCreate: "create", opDelete: "delete", opExists: "exists", opGetData: "getData",
	opSetData: "setData", opGetACL: "getACL", opSetACL: "setACL", opGetChildren: "getChildren",
	opSync: "sync", opGetChildren2: "getChildren2", opCheck: "check", opMulti: "multi",
	opCreate2: "create2", opCheckWatches: "checkWatches", opRemoveWatches: "removeWatches",
	opCreateContainer: "createContainer", opCreateTTL: "createTTL", opMultiRead: "multiRead",
	opAuth: "addAuth", opGetEphemerals: "getEphemerals", opGetAllChildrenNum: "getAllChildrenNumber",
	opAddWatch: "addWatch", opWhoAmI: "whoAmI", opCloseSession: "closeSession",
	codeReconnect: "reconnect", codeNewSession: "newSession",
}

func opName(code int32) string {
	if n, ok := opNames[code]; ok {
		return n
	}
	return strconv.Itoa(int(code))
}

// String renders op as one line of a replayable script.
func (op Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "s%d %s", op.Session, op.describe())
	return b.String()
}

func (op Op) describe() string {
	var b strings.Builder
	b.WriteString(opName(op.Code))
	if op.Code == opAuth {
		fmt.Fprintf(&b, " %s %s", op.Scheme, showData(op.Data))
		return b.String()
	}
	if op.Code == opMulti || op.Code == opMultiRead {
		b.WriteString(" [")
		for i, s := range op.Sub {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(s.describe())
		}
		b.WriteString("]")
		return b.String()
	}
	if op.Code == codeReconnect || op.Code == codeNewSession || op.Code == opWhoAmI {
		return b.String()
	}
	fmt.Fprintf(&b, " %q", op.Path)
	switch op.Code {
	case opCreate, opCreate2, opCreateContainer, opCreateTTL:
		fmt.Fprintf(&b, " %s acl=%v flags=%d", showData(op.Data), op.ACL, op.Flags)
		if op.Code == opCreateTTL {
			fmt.Fprintf(&b, " ttl=%d", op.TTL)
		}
	case opSetData:
		fmt.Fprintf(&b, " %s version=%d", showData(op.Data), op.Version)
	case opDelete, opCheck:
		fmt.Fprintf(&b, " version=%d", op.Version)
	case opSetACL:
		fmt.Fprintf(&b, " acl=%v version=%d", op.ACL, op.Version)
	case opExists, opGetData, opGetChildren, opGetChildren2:
		if op.Watch {
			b.WriteString(" watch")
		}
	case opAddWatch, opRemoveWatches, opCheckWatches:
		fmt.Fprintf(&b, " mode=%d", op.Mode)
	}
	return b.String()
}

// showData renders data so that null, empty and large values stay apart.
func showData(d []byte) string {
	switch {
	case d == nil:
		return "null"
	case len(d) > 64:
		return fmt.Sprintf("<%d bytes>", len(d))
	}
	return strconv.Quote(string(d))
}

// resolve maps a "~" path onto root.
func resolve(p, root string) string {
	if rest, ok := strings.CutPrefix(p, "~"); ok {
		return root + rest
	}
	return p
}

// body encodes op's request record (root resolves "~" paths).
func (op Op) body(root string) enc {
	p := resolve(op.Path, root)
	e := enc(nil)
	switch op.Code {
	case opCreate, opCreate2, opCreateContainer:
		return e.str(p).buf(op.Data).acls(op.ACL).i32(op.Flags)
	case opCreateTTL:
		return e.str(p).buf(op.Data).acls(op.ACL).i32(op.Flags).i64(op.TTL)
	case opDelete, opCheck:
		return e.str(p).i32(op.Version)
	case opExists, opGetData, opGetChildren, opGetChildren2:
		return e.str(p).boolean(op.Watch)
	case opSetData:
		return e.str(p).buf(op.Data).i32(op.Version)
	case opGetACL, opSync, opGetEphemerals, opGetAllChildrenNum:
		return e.str(p)
	case opSetACL:
		return e.str(p).acls(op.ACL).i32(op.Version)
	case opAddWatch, opRemoveWatches, opCheckWatches:
		return e.str(p).i32(op.Mode)
	case opAuth:
		return e.i32(0).str(op.Scheme).buf(op.Data)
	case opMulti, opMultiRead:
		for _, s := range op.Sub {
			e = append(e.i32(s.Code).boolean(false).i32(-1), s.body(root)...)
		}
		return e.i32(-1).boolean(true).i32(-1)
	}
	return e
}

// mayWatch reports whether op can leave a watch on its session.
func (op Op) mayWatch() bool {
	if op.Code == opAddWatch || op.Watch {
		return true
	}
	return slices.ContainsFunc(op.Sub, Op.mayWatch)
}

// errNames are ZooKeeper's error codes, by the names its Java client uses.
var errNames = map[int32]string{
	0: "OK", -1: "SystemError", -2: "RuntimeInconsistency", -3: "DataInconsistency",
	-4: "ConnectionLoss", -5: "MarshallingError", -6: "Unimplemented", -7: "OperationTimeout",
	-8: "BadArguments", -13: "NewConfigNoQuorum", -14: "ReconfigInProgress", -15: "UnknownSession",
	-100: "APIError", -101: "NoNode", -102: "NoAuth", -103: "BadVersion",
	-108: "NoChildrenForEphemerals", -110: "NodeExists", -111: "NotEmpty", -112: "SessionExpired",
	-113: "InvalidCallback", -114: "InvalidACL", -115: "AuthFailed", -118: "SessionMoved",
	-119: "NotReadOnly", -120: "EphemeralOnLocalSession", -121: "NoWatcher", -122: "RequestTimeout",
	-123: "ReconfigDisabled", -124: "SessionClosedRequireSaslAuth", -125: "QuotaExceeded",
	-127: "Throttled",
}

func errName(code int32) string {
	if n, ok := errNames[code]; ok {
		return n
	}
	return fmt.Sprintf("error %d", code)
}

// normalizer renders what a server answered in a form two servers can be
// compared by: zxids by their order among the zxids seen so far (not
// their values), times as zero or not, sessions by their place in the run,
// child lists sorted (ZooKeeper does not order them).
type normalizer struct {
	labels   map[int64]string
	sorted   []int64
	sessions map[int64]string
	created  []string // paths of the nodes created since the runner last asked
}

func newNormalizer() *normalizer {
	return &normalizer{labels: map[int64]string{}, sessions: map[int64]string{}}
}

// zxid labels v by the order in which zxids first appeared; a new zxid
// smaller than one seen before says which (order is what two servers must
// agree on).
func (n *normalizer) zxid(v int64) string {
	if v == 0 {
		return "0"
	}
	if l, ok := n.labels[v]; ok {
		return l
	}
	i, _ := slices.BinarySearch(n.sorted, v)
	n.sorted = slices.Insert(n.sorted, i, v)
	l := fmt.Sprintf("z%d", len(n.labels)+1)
	n.labels[v] = l
	if i+1 < len(n.sorted) {
		return l + "<" + n.labels[n.sorted[i+1]]
	}
	return l
}

func (n *normalizer) owner(v int64) string {
	if v == 0 {
		return "0"
	}
	if l, ok := n.sessions[v]; ok {
		return l
	}
	return fmt.Sprintf("%#x", v)
}

func (n *normalizer) stat(s stat) string {
	t := func(v int64) string {
		if v == 0 {
			return "0"
		}
		return "t"
	}
	order := ""
	if s.mtime < s.ctime {
		order = " mtime<ctime"
	}
	return fmt.Sprintf("{cz=%s mz=%s pz=%s ct=%s mt=%s%s v=%d cv=%d av=%d owner=%s len=%d kids=%d}",
		n.zxid(s.czxid), n.zxid(s.mzxid), n.zxid(s.pzxid), t(s.ctime), t(s.mtime), order,
		s.version, s.cversion, s.aversion, n.owner(s.ephemeralOwner), s.dataLength, s.numChildren)
}

// result renders a reply to op.
func (n *normalizer) result(op Op, r reply) string {
	d := &dec{b: r.body}
	if r.err != 0 {
		return errName(r.err) + d.rest()
	}
	var out string
	switch op.Code {
	case opMulti, opMultiRead:
		out = n.multi(d)
	default:
		out = n.record(op.Code, d)
	}
	if n.writes(op) {
		out = "zxid " + n.zxid(r.zxid) + " " + out
	}
	return "OK " + out + d.rest()
}

// writes reports whether op's reply header carries the zxid of its own
// change, which must take its place in the order of zxids.
func (n *normalizer) writes(op Op) bool {
	switch op.Code {
	case opCreate, opCreate2, opCreateContainer, opCreateTTL, opDelete, opSetData, opSetACL, opMulti:
		return true
	}
	return false
}

// record renders one successful result record of the operation code.
func (n *normalizer) record(code int32, d *dec) string {
	switch code {
	case opSync:
		return strconv.Quote(d.str())
	case opCreate:
		p := d.str()
		n.created = append(n.created, p)
		return strconv.Quote(p)
	case opCreate2, opCreateContainer, opCreateTTL:
		p := d.str()
		n.created = append(n.created, p)
		return strconv.Quote(p) + " " + n.stat(d.stat())
	case opExists, opSetData, opSetACL:
		return n.stat(d.stat())
	case opGetData:
		data := d.buf()
		return showData(data) + " " + n.stat(d.stat())
	case opGetACL:
		acls := d.acls()
		return fmt.Sprint(acls) + " " + n.stat(d.stat())
	case opGetChildren, opGetEphemerals:
		return fmt.Sprint(slices.Sorted(slices.Values(d.strs())))
	case opGetChildren2:
		kids := slices.Sorted(slices.Values(d.strs()))
		return fmt.Sprint(kids) + " " + n.stat(d.stat())
	case opGetAllChildrenNum:
		return strconv.Itoa(int(d.i32()))
	case opWhoAmI:
		var who []string
		for k := d.i32(); k > 0 && d.err == nil; k-- {
			who = append(who, d.str()+":"+d.str())
		}
		slices.Sort(who) // ZooKeeper keeps them in a hash set
		return fmt.Sprint(who)
	}
	return "" // delete, check, addWatch, removeWatches, checkWatches: the rest shows any body
}

// multi renders a multi or multiRead response: each result's header and
// record, up to the closing header.
func (n *normalizer) multi(d *dec) string {
	var parts []string
	for d.err == nil {
		typ, done, code := d.i32(), d.boolean(), d.i32()
		if d.err != nil {
			break
		}
		if done {
			parts = append(parts, fmt.Sprintf("end(%d,%d)", typ, code))
			break
		}
		if typ == -1 {
			parts = append(parts, fmt.Sprintf("error(%d) %s", code, errName(d.i32())))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s(%d) %s", opName(typ), code, n.record(typ, d)))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}
