package zkdiff

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
)

// OversizedData is the size of the rare write that no server may accept:
// twice ZooKeeper's default jute.maxbuffer (both servers close the
// connection).
const OversizedData = 2 << 20

// names are the node names the generator composes paths from; few, so
// that operations meet each other's nodes.
var names = []string{"a", "b", "c", "q-"}

// gen draws a seeded random sequence of operations over a fixed number of
// sessions. It learns the names of sequential nodes from the reference
// server's answers, so the sequence depends only on the seed and on what
// the reference answers (the same for a server that agrees with it).
type gen struct {
	r        *rand.Rand
	sessions int
	// unreadable lets ACLs shut sessions out of reading nodes, and then
	// the sequence has no persistent or recursive watches: Grove delivers
	// their events only for nodes the watcher may READ (CVE-2024-23944,
	// fixed in ZooKeeper 3.8.4), the reference (Debian's 3.8.0) for all.
	// Odd seeds have it, even ones have the watches.
	unreadable bool
	pool       []string // "~" paths created so far
	known      map[string]bool
	// oneShot and persistent are the paths each session asked a watch of
	// either sort on (since its last new connection). The sequence never
	// asks two modes on one path: ZooKeeper 3.8 keeps one mode per session
	// and path, so the second replaces the first (fixed in 3.9 by
	// ZOOKEEPER-4466); Grove keeps both, as 3.9 does (a deliberate
	// difference).
	oneShot    []map[string]bool
	persistent []map[string]int32 // path → addWatch mode + 1
}

func newGen(seed uint64, sessions int) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), sessions: sessions, unreadable: seed%2 == 1,
		known: map[string]bool{"~": true}, pool: []string{"~"}}
	g.oneShot, g.persistent = make([]map[string]bool, sessions), make([]map[string]int32, sessions)
	for k := range sessions {
		g.forget(k)
	}
	return g
}

// forget clears session k's watch paths: a new connection has none.
func (g *gen) forget(k int) { g.oneShot[k], g.persistent[k] = map[string]bool{}, map[string]int32{} }

// keepModesApart turns a watch op that would mix watch sorts on a path of
// its session into one that sets no watch (see gen.oneShot), and records
// the watches it asks.
func (g *gen) keepModesApart(op Op) Op {
	k := op.Session
	switch {
	case op.Code == codeReconnect || op.Code == codeNewSession:
		g.forget(k)
	case op.Code == opAddWatch:
		if m := g.persistent[k][op.Path]; g.oneShot[k][op.Path] || (m != 0 && m != op.Mode+1) {
			return Op{Session: k, Code: opExists, Path: op.Path}
		}
		g.persistent[k][op.Path] = op.Mode + 1
	case op.Code == opRemoveWatches && op.Mode != 3 && g.persistent[k][op.Path] != 0:
		// ZooKeeper 3.8 keeps a persistent watch in both its data and
		// child tables, and removing one kind removes half of it; Grove
		// removes persistent watches with kind Any only (a deliberate
		// difference).
		op.Mode = 3
		delete(g.persistent[k], op.Path)
	case op.Code == opRemoveWatches && op.Mode == 3:
		delete(g.persistent[k], op.Path)
		delete(g.oneShot[k], op.Path)
	case op.Watch:
		if g.persistent[k][op.Path] != 0 {
			op.Watch = false
		} else {
			g.oneShot[k][op.Path] = true
		}
	}
	return op
}

// learn adds the node a successful create made to the pool.
func (g *gen) learn(path string) {
	if !g.known[path] {
		g.known[path] = true
		g.pool = append(g.pool, path)
	}
}

// weighted picks among choices by weight.
func (g *gen) weighted(w ...int) int {
	total := 0
	for _, x := range w {
		total += x
	}
	n := g.r.IntN(total)
	for i, x := range w {
		if n < x {
			return i
		}
		n -= x
	}
	return len(w) - 1
}

// path draws a path: mostly a known one, or a new child of a known one.
func (g *gen) path() string {
	base := g.pool[g.r.IntN(len(g.pool))]
	switch g.weighted(55, 40, 5) {
	case 0:
		return base
	case 1:
		if strings.Count(base, "/") >= 3 {
			base = "~"
		}
		return base + "/" + names[g.r.IntN(len(names))]
	}
	// Not /zookeeper/config: its data and Stat describe each cluster's own
	// servers (a test of its own covers it).
	return []string{"/", "/zookeeper", "/zookeeper/quota", "~/a", "~/b/c"}[g.r.IntN(5)]
}

// badPath draws a path that is invalid in one of the ways ZooKeeper
// checks, or a reserved one.
func (g *gen) badPath() string {
	return []string{"", "rel", "~/a/", "~//a", "~/./a", "~/a/..", "~/a/.", "~/x\x00y", "~/\x01",
		"~/\ud7ff", "~/\uf8ff", "~/\ufff0", "/zookeeper/x", "/zookeeper", "/", "~/a/b/c/d/e"}[g.r.IntN(16)]
}

func (g *gen) data() []byte {
	switch g.weighted(15, 15, 65, 5) {
	case 0:
		return nil
	case 1:
		return []byte{}
	case 2:
		return []byte{'v', byte('0' + g.r.IntN(10))}
	}
	return bytes.Repeat([]byte{'x'}, 100+g.r.IntN(8000))
}

func (g *gen) version() int32 {
	if g.r.IntN(5) < 2 {
		return -1
	}
	return int32(g.r.IntN(4))
}

var (
	aclOpen = []ACL{{Perms: 31, Scheme: "world", ID: "anyone"}}
	aclSets = [][]ACL{
		{{Perms: 1, Scheme: "world", ID: "anyone"}},
		{{Perms: 31, Scheme: "digest", ID: digestID("alice", "pw")}},
		{{Perms: 31, Scheme: "digest", ID: digestID("alice", "pw")}, {Perms: 1, Scheme: "world", ID: "anyone"}},
		{{Perms: 31, Scheme: "ip", ID: "127.0.0.1"}},
		{{Perms: 31, Scheme: "ip", ID: "10.0.0.0/8"}},
		{{Perms: 16, Scheme: "world", ID: "anyone"}},
		{{Perms: 31, Scheme: "auth", ID: ""}},
		{},
		{{Perms: 31, Scheme: "foo", ID: "bar"}},
		{{Perms: 31, Scheme: "digest", ID: "alice"}},
		{{Perms: 31, Scheme: "world", ID: "nobody"}},
		{{Perms: 31, Scheme: "ip", ID: "not-an-ip"}},
		{{Perms: 0, Scheme: "world", ID: "anyone"}},
	}
)

func (g *gen) acl() []ACL {
	if g.r.IntN(10) < 8 {
		return aclOpen
	}
	for {
		acl := slices.Clone(aclSets[g.r.IntN(len(aclSets))])
		if g.unreadable || worldReadable(acl) {
			return acl
		}
	}
}

// worldReadable reports whether every session of a run may READ a node
// with acl (all of them connect from 127.0.0.1), or whether the ACL is
// refused anyway.
func worldReadable(acl []ACL) bool {
	if len(acl) == 0 {
		return true // InvalidACL
	}
	for _, a := range acl {
		switch {
		case a.Perms&1 != 0 && a.Scheme == "world" && a.ID == "anyone":
			return true
		case a.Perms&1 != 0 && a.Scheme == "ip" && a.ID == "127.0.0.1":
			return true
		case a.Scheme == "foo" || (a.Scheme == "world" && a.ID != "anyone") || a.ID == "not-an-ip" || a.ID == "alice":
			return true // InvalidACL
		}
	}
	return false
}

// create draws a create of any mode, through the opcode that mode needs,
// or now and then through another.
func (g *gen) create(path string, inMulti bool) Op {
	op := Op{Path: path, Data: g.data(), ACL: g.acl(), Flags: int32(g.r.IntN(7)), TTL: 3_600_000}
	switch op.Flags {
	case 4:
		op.Code = opCreateContainer
	case 5, 6:
		op.Code = opCreateTTL
	default:
		op.Code = []int32{opCreate, opCreate2}[g.r.IntN(2)]
	}
	if g.r.IntN(20) == 0 {
		// An opcode that disagrees with the mode. Not createContainer with
		// a sequential mode: ZooKeeper makes a sequential container, which
		// Grove refuses (a deliberate difference, docs/zookeeper.md).
		op.Code = []int32{opCreate, opCreate2, opCreateContainer, opCreateTTL}[g.r.IntN(4)]
		if op.Code == opCreateContainer && (op.Flags == 2 || op.Flags == 3) {
			op.Flags = 0
		}
		// Nor, in a multi, a TTL mode without createTTL: ZooKeeper fails
		// the multi as malformed only if the ops before it succeed, Grove
		// always (a deliberate difference).
		if inMulti && op.Code != opCreateTTL && (op.Flags == 5 || op.Flags == 6) {
			op.Flags = 0
		}
	}
	if g.r.IntN(20) == 0 {
		op.TTL = []int64{0, -5, 1 << 41, 1}[g.r.IntN(4)]
		if op.TTL == 1 {
			op.TTL = 3_600_000
			op.Flags = []int32{7, -1, 100}[g.r.IntN(3)]
		}
	}
	return op
}

// writeOp draws a write for a multi, or for a plain request.
func (g *gen) writeOp(path string) Op {
	switch g.weighted(45, 20, 25, 10) {
	case 0:
		return g.create(path, true)
	case 1:
		return Op{Code: opDelete, Path: path, Version: g.version()}
	case 2:
		return Op{Code: opSetData, Path: path, Data: g.data(), Version: g.version()}
	}
	return Op{Code: opCheck, Path: path, Version: g.version()}
}

// next draws the next operation.
func (g *gen) next() Op {
	op := g.draw()
	op.Session = g.r.IntN(g.sessions)
	return g.keepModesApart(op)
}

func (g *gen) draw() Op {
	w := g.r.IntN(2) == 0
	switch g.weighted(26, 12, 12, 7, 7, 8, 7, 2, 3, 3, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 2) {
	case 0:
		return g.create(g.path(), false)
	case 1:
		return Op{Code: opDelete, Path: g.path(), Version: g.version()}
	case 2:
		return Op{Code: opSetData, Path: g.path(), Data: g.data(), Version: g.version()}
	case 3:
		return Op{Code: opExists, Path: g.path(), Watch: w}
	case 4:
		return Op{Code: opGetData, Path: g.path(), Watch: w}
	case 5:
		return Op{Code: []int32{opGetChildren, opGetChildren2}[g.r.IntN(2)], Path: g.path(), Watch: w}
	case 6:
		op := Op{Code: opMulti}
		for range 1 + g.r.IntN(4) {
			op.Sub = append(op.Sub, g.writeOp(g.path()))
		}
		return op
	case 7:
		op := Op{Code: opMultiRead}
		for range 1 + g.r.IntN(3) {
			op.Sub = append(op.Sub, Op{Code: []int32{opGetChildren, opGetData}[g.r.IntN(2)], Path: g.path()})
		}
		return op
	case 8:
		return Op{Code: opGetACL, Path: g.path()}
	case 9:
		return Op{Code: opSetACL, Path: g.path(), ACL: g.acl(), Version: g.version()}
	case 10:
		return Op{Code: opSync, Path: g.path()}
	case 11:
		// A check outside a multi: ZooKeeper 3.8 never answers one (its
		// clients have no call that sends it), so the sequence has none.
		return Op{Code: opSync, Path: g.path()}
	case 12:
		return Op{Code: opGetEphemerals, Path: []string{"~", "~/a", "/", "~/q-"}[g.r.IntN(4)]}
	case 13:
		return Op{Code: opGetAllChildrenNum, Path: g.path()}
	case 14:
		if g.unreadable {
			return Op{Code: opGetData, Path: g.path(), Watch: true}
		}
		return Op{Code: opAddWatch, Path: g.path(), Mode: int32(g.r.IntN(2))}
	case 15:
		return Op{Code: []int32{opRemoveWatches, opCheckWatches}[g.r.IntN(2)], Path: g.path(), Mode: 1 + int32(g.r.IntN(3))}
	case 16:
		creds := []struct {
			scheme string
			cred   string
		}{{"digest", "alice:pw"}, {"digest", "bob:pw"}, {"digest", "blah"}, {"foo", "x"}}
		c := creds[g.r.IntN(len(creds))]
		return Op{Code: opAuth, Scheme: c.scheme, Data: []byte(c.cred)}
	case 17:
		return Op{Code: opWhoAmI}
	case 18:
		return Op{Code: codeReconnect}
	case 19:
		return Op{Code: codeNewSession}
	case 20:
		if g.r.IntN(10) == 0 {
			return Op{Code: opSetData, Path: g.path(), Data: bytes.Repeat([]byte{'o'}, OversizedData), Version: -1}
		}
		return g.create(g.path(), false)
	}
	// An invalid path through one of the requests that carry one.
	bad := g.badPath()
	switch g.r.IntN(8) {
	case 0:
		return Op{Code: opDelete, Path: bad, Version: -1}
	case 1:
		return Op{Code: opSetData, Path: bad, Data: []byte("x"), Version: -1}
	case 2:
		return Op{Code: opExists, Path: bad, Watch: w}
	case 3:
		return Op{Code: opGetData, Path: bad}
	case 4:
		return Op{Code: opGetChildren, Path: bad}
	case 5:
		return Op{Code: opMulti, Sub: []Op{g.create("~/m", true), g.create(bad, true)}}
	}
	return g.create(bad, false)
}
