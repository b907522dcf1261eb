// Package zkdiff is a differential tester for ZooKeeper's client protocol:
// it runs a seeded random sequence of operations over several sessions in
// lockstep against a reference (real ZooKeeper) and a server under test
// (Grove), compares every answer and every watch notification, and the
// final trees, and shrinks a sequence that finds a difference to a short
// one.
//
// Session k uses server k of a cluster (modulo its size). Before an
// operation on a session whose server is not the one the previous
// operation used, the tester sends that session a sync, and after every
// operation it reads on each session that may hold a watch (a sync on
// another server), collecting its notifications: so a session always sees
// the others' acknowledged writes, and the notifications a write causes
// are all collected before the next operation, whatever server each
// session is on. Neither is part of the compared transcript.
//
// What is compared, per operation: the error code, every record of the
// reply (multi results with their headers), every Stat field with zxids by
// their order (not their values) and times as zero or not, sequential
// names, watch notifications per session in order, and bytes the tester
// did not expect. Child lists are sorted, as ZooKeeper does not order them.
package zkdiff

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// Cluster is a set of servers speaking ZooKeeper's protocol.
type Cluster struct {
	Name  string
	Addrs []string
}

// Difference is the first step at which the server under test answered
// otherwise than the reference.
type Difference struct {
	Step      int    // index into Ops, or len(Ops) for the final trees
	Ops       []Op   // the sequence up to and including the step
	Reference string // what the reference answered
	Test      string // what the server under test answered
}

// script renders the last n of ops, numbered.
func script(ops []Op, n int) string {
	var b strings.Builder
	for i := max(len(ops)-n, 0); i < len(ops); i++ {
		fmt.Fprintf(&b, "  %4d  %s\n", i, ops[i])
	}
	return b.String()
}

func (d *Difference) String() string {
	var b strings.Builder
	b.WriteString(script(d.Ops, len(d.Ops)))
	fmt.Fprintf(&b, "step %d:\n  reference: %s\n  test:      %s", d.Step, d.Reference, d.Test)
	return b.String()
}

// Runner runs sequences against a reference and a server under test.
type Runner struct {
	Reference, Test Cluster
	Sessions        int
	// Logf, if set, is told of progress.
	Logf func(format string, args ...any)
	// KeepGoing, if set, is told of every difference after the first, and
	// the run goes on (later ones may follow from earlier ones).
	KeepGoing func(*Difference)
}

// runs numbers the runs of the process, each under its own root.
var runs atomic.Int64

// side is one cluster during one run.
type side struct {
	cl       Cluster
	root     string
	sessions []*session
	norm     *normalizer
	last     int // server of the previous operation
	nth      int // sessions opened so far, for their labels
}

// Random runs a sequence of n operations drawn from seed. It returns the
// first difference (nil if there is none) or an error that stopped the
// run (a server that stopped answering).
func (r *Runner) Random(seed uint64, n int) (*Difference, error) {
	g := newGen(seed, r.Sessions)
	return r.exec(n, g.next, g.observe)
}

// Replay runs a given sequence.
func (r *Runner) Replay(ops []Op) (*Difference, error) {
	i := 0
	return r.exec(len(ops), func() Op { i++; return ops[i-1] }, nil)
}

func (r *Runner) exec(n int, next func() Op, observe func(created []string)) (*Difference, error) {
	root := fmt.Sprintf("/zkdiff-%d", runs.Add(1))
	ref, test := &side{cl: r.Reference, root: root, norm: newNormalizer()}, &side{cl: r.Test, root: root, norm: newNormalizer()}
	defer ref.close()
	defer test.close()
	for _, s := range []*side{ref, test} {
		if err := s.start(r.Sessions); err != nil {
			return nil, fmt.Errorf("%s: %w", s.cl.Name, err)
		}
	}
	var ops []Op
	for i := range n {
		op := next()
		ops = append(ops, op)
		a, err := ref.step(op)
		if err != nil {
			return nil, fmt.Errorf("%s, step %d: %w; the steps up to it:\n%s", ref.cl.Name, i, err, script(ops, 20))
		}
		b, err := test.step(op)
		if err != nil {
			return nil, fmt.Errorf("%s, step %d: %w; the steps up to it:\n%s", test.cl.Name, i, err, script(ops, 20))
		}
		if a != b {
			d := &Difference{Step: i, Ops: ops, Reference: a, Test: b}
			if r.KeepGoing == nil {
				return d, nil
			}
			r.KeepGoing(d)
		}
		if observe != nil {
			observe(ref.created())
		}
		if r.Logf != nil && (i+1)%1000 == 0 {
			r.Logf("%d operations, no difference", i+1)
		}
	}
	a, err := ref.tree()
	if err != nil {
		return nil, fmt.Errorf("%s: final tree: %w", ref.cl.Name, err)
	}
	b, err := test.tree()
	if err != nil {
		return nil, fmt.Errorf("%s: final tree: %w", test.cl.Name, err)
	}
	if a != b {
		return &Difference{Step: len(ops), Ops: ops, Reference: a, Test: b}, nil
	}
	return nil, nil
}

// observe teaches the generator the nodes the reference created (the
// names of sequential nodes are known only from the answers).
func (g *gen) observe(created []string) {
	for _, p := range created {
		g.learn(p)
	}
}

// start opens the sessions, spread over the servers, and creates the
// run's root.
func (s *side) start(n int) error {
	for k := range n {
		ss := &session{addr: s.cl.Addrs[k%len(s.cl.Addrs)]}
		s.sessions = append(s.sessions, ss)
		if err := s.connect(k, true); err != nil {
			return err
		}
	}
	s.last = 0
	r, _, err := s.sessions[0].call(0, opCreate, Op{Code: opCreate, Path: s.root, ACL: aclOpen}.body(""))
	if err != nil {
		return err
	}
	if r.err != 0 {
		return fmt.Errorf("create %s: %s", s.root, errName(r.err))
	}
	return nil
}

// connect opens session k's connection: a new session, or a re-attach.
func (s *side) connect(k int, fresh bool) error {
	ss := s.sessions[k]
	if fresh {
		ss.id, ss.passwd = 0, nil
	}
	ok, err := ss.open()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("session %d: the server refused it", k)
	}
	if fresh {
		s.nth++
		s.norm.sessions[ss.id] = fmt.Sprintf("s%d.%d", k, s.nth)
	}
	return nil
}

func (s *side) close() {
	for _, ss := range s.sessions {
		if ss.nc != nil {
			_, _, _ = ss.call(0, opCloseSession, nil)
			ss.drop()
		}
	}
}

// created returns the nodes the last step created, as "~" paths.
func (s *side) created() []string {
	var out []string
	for _, p := range s.norm.created {
		if rest, ok := strings.CutPrefix(p, s.root); ok && (rest == "" || rest[0] == '/') {
			out = append(out, "~"+rest)
		}
	}
	s.norm.created = s.norm.created[:0]
	return out
}

// server is the index of the server session k uses.
func (s *side) server(k int) int { return k % len(s.cl.Addrs) }

// sync brings session k up to date with every acknowledged write,
// collecting its notifications; it is not part of the transcript, except
// for the notifications and a failure. On the server of the last write a
// read does (the server answered that write once it applied it, and
// queued the notifications it caused before); elsewhere a sync.
func (s *side) sync(k int) ([]event, error) {
	ss := s.sessions[k]
	op, body := opSync, enc(nil).str("/")
	if s.server(k) == s.last {
		op, body = opExists, enc(nil).str("/").boolean(false)
	}
	r, evs, err := ss.call(0, op, body)
	if err == nil && r.err != 0 {
		err = fmt.Errorf("%s: %s", opName(op), errName(r.err))
	}
	return evs, err
}

// step runs one operation and renders its answer and every notification
// it caused, session by session.
func (s *side) step(op Op) (string, error) {
	var out strings.Builder
	k := op.Session
	ss := s.sessions[k]
	if ss.nc == nil {
		ok, err := ss.open()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "re-attach granted=%v; ", ok)
		if !ok {
			if err := s.connect(k, true); err != nil {
				return "", err
			}
		}
	}
	var early []event
	if s.server(k) != s.last {
		evs, err := s.sync(k)
		if err != nil {
			return "", err
		}
		early = evs
	}
	s.last = s.server(k)
	answer, evs, err := s.do(k, op)
	if err != nil {
		return "", err
	}
	out.WriteString(answer)
	evs = append(early, evs...)
	// A closed session's ephemerals go in one change, in an order
	// ZooKeeper does not define (a hash set's): their events are sorted.
	closing := op.Code == codeNewSession
	if len(evs) > 0 {
		fmt.Fprintf(&out, " | s%d events %s", k, showEvents(evs, closing))
	}
	for j, other := range s.sessions {
		if other.nc == nil || !other.watching {
			continue
		}
		evs, err := s.sync(j)
		if errors.Is(err, errLost) {
			fmt.Fprintf(&out, " | s%d lost its connection", j)
			continue
		}
		if err != nil {
			return "", err
		}
		if len(evs) > 0 {
			fmt.Fprintf(&out, " | s%d events %s", j, showEvents(evs, closing))
		}
	}
	return out.String(), nil
}

// do sends op on session k and renders the answer.
func (s *side) do(k int, op Op) (string, []event, error) {
	ss := s.sessions[k]
	switch op.Code {
	case codeReconnect:
		ss.drop()
		ok, err := ss.open()
		if err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("re-attach granted=%v", ok), nil, nil
	case codeNewSession:
		r, evs, err := ss.call(0, opCloseSession, nil)
		closed := "lost"
		if err == nil {
			closed = errName(r.err)
		} else if !errors.Is(err, errLost) {
			return "", nil, err
		}
		ss.drop()
		if err := s.connect(k, true); err != nil {
			return "", nil, err
		}
		return "closeSession " + closed + ", new session", evs, nil
	}
	if op.mayWatch() {
		ss.watching = true
	}
	xid := int32(0)
	if op.Code == opAuth {
		xid = xidAuth
	}
	r, evs, err := ss.call(xid, op.Code, op.body(s.root))
	if errors.Is(err, errLost) {
		return "connection lost", evs, nil
	}
	if err != nil {
		return "", evs, err
	}
	return s.norm.result(op, r), evs, nil
}

func showEvents(evs []event, sorted bool) string {
	parts := make([]string, len(evs))
	for i, e := range evs {
		parts[i] = fmt.Sprintf("{type=%d state=%d %q}", e.typ, e.state, e.path)
	}
	if sorted {
		slices.Sort(parts)
	}
	return strings.Join(parts, " ")
}

// tree renders the run's final tree from session 0: every node's data,
// Stat and children, depth first, as session 0 may read them.
func (s *side) tree() (string, error) {
	ss := s.sessions[0]
	if ss.nc == nil {
		if err := s.connect(0, ss.id == 0); err != nil {
			return "", err
		}
	}
	if _, err := s.sync(0); err != nil {
		return "", err
	}
	var out []string
	var walk func(p string) error
	walk = func(p string) error {
		r, _, err := ss.call(0, opGetData, enc(nil).str(p).boolean(false))
		if err != nil {
			return err
		}
		out = append(out, p+" "+s.norm.result(Op{Code: opGetData}, r))
		r, _, err = ss.call(0, opGetChildren, enc(nil).str(p).boolean(false))
		if err != nil {
			return err
		}
		if r.err != 0 {
			out = append(out, p+" children: "+errName(r.err))
			return nil
		}
		d := &dec{b: r.body}
		for _, c := range slices.Sorted(slices.Values(d.strs())) {
			if err := walk(p + "/" + c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(s.root); err != nil {
		return "", err
	}
	return strings.Join(out, "\n"), nil
}

// Shrink looks for a shorter sequence that still finds a difference, by
// removing ever smaller runs of operations (delta debugging), and returns
// the shortest found. Each attempt replays on fresh sessions under a fresh
// root; attempts bounds how many.
func (r *Runner) Shrink(d *Difference, attempts int) *Difference {
	best := d
	ops := d.Ops
	for chunk := max(len(ops)/2, 1); attempts > 0; {
		removed := false
		for start := 0; start < len(ops) && attempts > 0; {
			cand := slices.Concat(ops[:start], ops[min(start+chunk, len(ops)):])
			if len(cand) == 0 {
				start += chunk
				continue
			}
			attempts--
			if nd, err := r.Replay(cand); err == nil && nd != nil {
				best, ops, removed = nd, nd.Ops, true
				continue
			}
			start += chunk
		}
		if !removed {
			if chunk == 1 {
				break
			}
			chunk = max(chunk/2, 1)
		}
	}
	return best
}
