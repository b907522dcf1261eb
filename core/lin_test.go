package core_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/internal/testutil"
)

var (
	seedFlag = flag.Uint64("grove.seed", 0, "seed of the randomized core tests (0: pick one and print it)")
	longFlag = flag.Bool("grove.long", false, "run the randomized core tests longer and on bigger clusters")
)

// testSeed returns the seed of a randomized test and logs it so a failing
// run can be replayed with -grove.seed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	return testutil.Seed(t, *seedFlag, "grove.seed")
}

// The linearizability model: each key (/k0../k3) is a register with
// existence, version and value, checked per key by porcupine. Every written
// value is unique, so a read of an old value cannot pass for a new one.

const linKeys = 4

func linPath(key int) string { return fmt.Sprintf("/k%d", key) }

type linKind uint8

const (
	linGet    linKind = iota // linearizable Get
	linSet                   // OpSetData with Version
	linCreate                // OpCreate (persistent)
	linDelete                // OpDelete with Version
)

func (k linKind) String() string {
	return [...]string{"get", "set", "create", "delete"}[k]
}

type linInput struct {
	Key     int
	Kind    linKind
	Version int32  // set, delete: the expected version (-1: any)
	Value   string // set, create: the data written
}

// linOutput is what a client saw. Unknown marks a write whose outcome the
// client never learnt (ctx ended, node stopped, session expired): it may or
// may not have happened, so its return time is infinite and the model
// accepts it either way.
type linOutput struct {
	Unknown bool
	Code    grove.Code
	Version int32  // get: the znode's version; set, create: the new version
	Value   string // get: the data read
}

type linState struct {
	Exists  bool
	Version int32
	Value   string
}

var linInitial = linState{Exists: true, Version: 0, Value: "init"}

// linApply is the sequential specification: the next state and the only
// correct output of in on s.
func linApply(s linState, in linInput) (linState, linOutput) {
	versionOK := func() bool { return in.Version == -1 || in.Version == s.Version }
	switch in.Kind {
	case linGet:
		if !s.Exists {
			return s, linOutput{Code: grove.CodeNoNode}
		}
		return s, linOutput{Code: grove.CodeOK, Version: s.Version, Value: s.Value}
	case linSet:
		switch {
		case !s.Exists:
			return s, linOutput{Code: grove.CodeNoNode}
		case !versionOK():
			return s, linOutput{Code: grove.CodeBadVersion}
		}
		next := linState{Exists: true, Version: s.Version + 1, Value: in.Value}
		return next, linOutput{Code: grove.CodeOK, Version: next.Version}
	case linCreate:
		if s.Exists {
			return s, linOutput{Code: grove.CodeNodeExists}
		}
		return linState{Exists: true, Version: 0, Value: in.Value}, linOutput{Code: grove.CodeOK, Version: 0}
	case linDelete:
		switch {
		case !s.Exists:
			return s, linOutput{Code: grove.CodeNoNode}
		case !versionOK():
			return s, linOutput{Code: grove.CodeBadVersion}
		}
		return linState{}, linOutput{Code: grove.CodeOK}
	}
	panic(fmt.Sprintf("unknown op kind %d", in.Kind))
}

var linModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		var parts [linKeys][]porcupine.Operation
		for _, op := range history {
			k := op.Input.(linInput).Key
			parts[k] = append(parts[k], op)
		}
		var out [][]porcupine.Operation
		for _, p := range parts {
			if len(p) > 0 {
				out = append(out, p)
			}
		}
		return out
	},
	Init: func() any { return linInitial },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(linInput), output.(linOutput)
		next, want := linApply(state.(linState), in)
		if out.Unknown {
			// Linearized here it happened; linearized after every other
			// operation (its return is infinite) it might as well not have.
			return true, next
		}
		return out == want, next
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		var arg string
		switch in.Kind {
		case linSet:
			arg = fmt.Sprintf(", v%d, %q", in.Version, in.Value)
		case linCreate:
			arg = fmt.Sprintf(", %q", in.Value)
		case linDelete:
			arg = fmt.Sprintf(", v%d", in.Version)
		}
		var res string
		switch {
		case out.Unknown:
			res = "unknown"
		case out.Code != grove.CodeOK:
			res = grove.CodeError(out.Code).Error()
		case in.Kind == linGet:
			res = fmt.Sprintf("v%d %q", out.Version, out.Value)
		case in.Kind == linSet || in.Kind == linCreate:
			res = fmt.Sprintf("ok v%d", out.Version)
		default:
			res = "ok"
		}
		return fmt.Sprintf("%s(%s%s) -> %s", in.Kind, linPath(in.Key), arg, res)
	},
	DescribeState: func(state any) string {
		s := state.(linState)
		if !s.Exists {
			return "absent"
		}
		return fmt.Sprintf("v%d %q", s.Version, s.Value)
	},
}

// checkLin runs porcupine on history and fails the test with the path of a
// visualization if it is not linearizable (or the check times out).
func checkLin(t *testing.T, history []porcupine.Operation, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(linModel, history, timeout)
	t.Logf("porcupine: %s for %d operations in %v", res, len(history), time.Since(start).Round(time.Millisecond))
	if res == porcupine.Ok {
		return
	}
	dir, err := os.MkdirTemp("", "grove-lin-")
	if err != nil {
		t.Fatalf("history is %s; cannot write its visualization: %v", res, err)
	}
	path := filepath.Join(dir, "history.html")
	if err := porcupine.VisualizePath(linModel, info, path); err != nil {
		t.Errorf("visualize: %v", err)
	}
	if res == porcupine.Unknown {
		t.Fatalf("linearizability check inconclusive after %v; history: %s", timeout, path)
	}
	t.Fatalf("history is NOT linearizable; visualization: %s", path)
}

// TestLinModelRejectsStaleRead feeds the model hand-made histories, so a
// model too lax to catch a stale read cannot hide behind a passing cluster.
func TestLinModelRejectsStaleRead(t *testing.T) {
	op := func(client int, call, ret int64, in linInput, out linOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
	}
	set := linInput{Key: 0, Kind: linSet, Version: 0, Value: "a"}
	setOK := linOutput{Code: grove.CodeOK, Version: 1}
	get := linInput{Key: 0, Kind: linGet}
	readA := linOutput{Code: grove.CodeOK, Version: 1, Value: "a"}
	readInit := linOutput{Code: grove.CodeOK, Version: 0, Value: "init"}
	inf := int64(math.MaxInt64)
	cases := []struct {
		name    string
		history []porcupine.Operation
		ok      bool
	}{
		{"read after write sees it", []porcupine.Operation{
			op(0, 0, 10, set, setOK), op(1, 20, 30, get, readA),
		}, true},
		{"stale read after acknowledged write", []porcupine.Operation{
			op(0, 0, 10, set, setOK), op(1, 20, 30, get, readInit),
		}, false},
		{"concurrent read may see either", []porcupine.Operation{
			op(0, 0, 10, set, setOK), op(1, 5, 15, get, readInit), op(2, 6, 16, get, readA),
		}, true},
		{"read goes back in time", []porcupine.Operation{
			op(0, 0, 100, set, setOK), op(1, 10, 20, get, readA), op(2, 30, 40, get, readInit),
		}, false},
		{"unknown write may have happened", []porcupine.Operation{
			op(0, 0, inf, set, linOutput{Unknown: true}), op(1, 20, 30, get, readA),
		}, true},
		{"unknown write may not have happened", []porcupine.Operation{
			op(0, 0, inf, set, linOutput{Unknown: true}), op(1, 20, 30, get, readInit),
		}, true},
		{"unknown write cannot be undone", []porcupine.Operation{
			op(0, 0, inf, set, linOutput{Unknown: true}), op(1, 20, 30, get, readA), op(2, 40, 50, get, readInit),
		}, false},
		{"wrong version accepted", []porcupine.Operation{
			op(0, 0, 10, linInput{Key: 0, Kind: linSet, Version: 5, Value: "b"}, linOutput{Code: grove.CodeOK, Version: 1}),
		}, false},
		{"bad version reported on a match", []porcupine.Operation{
			op(0, 0, 10, linInput{Key: 0, Kind: linSet, Version: 0, Value: "b"}, linOutput{Code: grove.CodeBadVersion}),
		}, false},
		{"create of an existing key", []porcupine.Operation{
			op(0, 0, 10, linInput{Key: 0, Kind: linCreate, Value: "c"}, linOutput{Code: grove.CodeOK}),
		}, false},
		{"delete then create then read", []porcupine.Operation{
			op(0, 0, 10, linInput{Key: 0, Kind: linDelete, Version: -1}, linOutput{Code: grove.CodeOK}),
			op(0, 20, 30, get, linOutput{Code: grove.CodeNoNode}),
			op(0, 40, 50, linInput{Key: 0, Kind: linCreate, Value: "c"}, linOutput{Code: grove.CodeOK}),
			op(1, 60, 70, get, linOutput{Code: grove.CodeOK, Value: "c"}),
		}, true},
		{"read of a deleted key", []porcupine.Operation{
			op(0, 0, 10, linInput{Key: 0, Kind: linDelete, Version: 0}, linOutput{Code: grove.CodeOK}),
			op(1, 20, 30, get, readInit),
		}, false},
		{"keys are independent", []porcupine.Operation{
			op(0, 0, 10, set, setOK), op(1, 20, 30, linInput{Key: 1, Kind: linGet}, readInit),
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := porcupine.CheckOperationsTimeout(linModel, tc.history, 10*time.Second)
			if want := map[bool]porcupine.CheckResult{true: porcupine.Ok, false: porcupine.Illegal}[tc.ok]; res != want {
				t.Fatalf("porcupine says %s, want %s", res, want)
			}
		})
	}
}

// linRecorder collects the history of all clients.
type linRecorder struct {
	start time.Time

	// mu guards ops.
	mu  sync.Mutex
	ops []porcupine.Operation
}

func (r *linRecorder) now() int64 { return time.Since(r.start).Nanoseconds() }

func (r *linRecorder) add(client int, call, ret int64, in linInput, out linOutput) {
	if out.Unknown {
		ret = math.MaxInt64
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out})
}

func (r *linRecorder) history() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// linClient runs random operations through its own session. After any
// write whose outcome it did not learn it abandons the session (its seq may
// still land) and opens a new one, on a random running node.
type linClient struct {
	id        int
	rng       *rand.Rand
	c         *coretest.Cluster
	rec       *linRecorder
	opTimeout time.Duration

	nd      *core.Node
	sess    *session
	seen    [linKeys]int32 // the newest version this client saw per key
	written int

	stats linStats
}

type linStats struct {
	ok, failed, unknown, readsLost, sessions int
}

func (cl *linClient) run(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if cl.sess == nil && !cl.open(ctx) {
			continue
		}
		select {
		case <-cl.nd.Done(): // crashed before we started: no operation
			cl.sess, cl.nd = nil, nil
			continue
		default:
		}
		key := cl.rng.IntN(linKeys)
		switch r := cl.rng.IntN(100); {
		case r < 40:
			cl.get(ctx, key)
		case r < 70:
			cl.write(ctx, linInput{Key: key, Kind: linSet, Version: cl.version(key), Value: cl.value()})
		case r < 85:
			cl.write(ctx, linInput{Key: key, Kind: linCreate, Value: cl.value()})
		default:
			cl.write(ctx, linInput{Key: key, Kind: linDelete, Version: cl.version(key)})
		}
	}
}

// open starts a session on a random running node.
func (cl *linClient) open(ctx context.Context) bool {
	ids := cl.c.IDs()
	nd := cl.c.Node(ids[cl.rng.IntN(len(ids))])
	if nd == nil {
		return false
	}
	octx, cancel := context.WithTimeout(ctx, cl.opTimeout)
	defer cancel()
	info, err := nd.CreateSession(octx, 30*time.Second)
	if err != nil {
		return false
	}
	cl.nd, cl.sess = nd, &session{n: nd, id: info.ID}
	cl.stats.sessions++
	return true
}

// version picks the expected version of a set or delete: mostly the one
// last seen, sometimes any, sometimes a wrong one.
func (cl *linClient) version(key int) int32 {
	switch r := cl.rng.IntN(10); {
	case r < 2:
		return -1
	case r < 8:
		return cl.seen[key]
	default:
		return max(0, cl.seen[key]+int32(cl.rng.IntN(3))-1)
	}
}

// timeout is the deadline of one operation: random, so some writes are cut
// off while raft still carries them.
func (cl *linClient) timeout() time.Duration {
	return cl.opTimeout/10 + time.Duration(cl.rng.Int64N(int64(cl.opTimeout)))
}

func (cl *linClient) value() string {
	cl.written++
	return fmt.Sprintf("c%d.%d", cl.id, cl.written)
}

func (cl *linClient) get(ctx context.Context, key int) {
	in := linInput{Key: key, Kind: linGet}
	octx, cancel := context.WithTimeout(ctx, cl.timeout())
	defer cancel()
	call := cl.rec.now()
	data, stat, _, err := cl.nd.Get(octx, core.Read{Linearizable: true}, linPath(key))
	ret := cl.rec.now()
	var out linOutput
	switch {
	case err == nil:
		out = linOutput{Code: grove.CodeOK, Version: stat.Version, Value: string(data)}
		cl.seen[key] = stat.Version
	case errors.Is(err, grove.ErrNoNode):
		out = linOutput{Code: grove.CodeNoNode}
	default:
		// A read that did not complete has no effect: leave it out, and
		// move on to another node.
		cl.stats.readsLost++
		cl.sess, cl.nd = nil, nil
		return
	}
	cl.stats.ok++
	cl.rec.add(cl.id, call, ret, in, out)
}

func (cl *linClient) write(ctx context.Context, in linInput) {
	req := core.Request{Path: linPath(in.Key), Version: in.Version}
	switch in.Kind {
	case linSet:
		req.Op, req.Data = core.OpSetData, []byte(in.Value)
	case linCreate:
		req.Op, req.Data, req.ACL, req.Mode = core.OpCreate, []byte(in.Value), grove.OpenACLUnsafe, grove.ModePersistent
		req.Version = 0
	case linDelete:
		req.Op = core.OpDelete
	}
	octx, cancel := context.WithTimeout(ctx, cl.timeout())
	defer cancel()
	call := cl.rec.now()
	res, err := cl.sess.submit(octx, req)
	ret := cl.rec.now()
	var out linOutput
	switch {
	case err != nil, res.Code == grove.CodeSessionExpired:
		// Outcome unknown (ZooKeeper treats a session expiry of a pending
		// request the same way). The seq may still be applied: never reuse
		// the session.
		out.Unknown = true
		cl.sess, cl.nd = nil, nil
		cl.stats.unknown++
	case res.Code == grove.CodeOK:
		out.Code = grove.CodeOK
		if in.Kind != linDelete && res.Stat != nil {
			out.Version = res.Stat.Version
		}
		if in.Kind == linSet && res.Stat == nil {
			out.Version = -1 // no Stat on a successful set: the model rejects it
		}
		cl.seen[in.Key] = out.Version
		cl.stats.ok++
	default:
		out.Code = res.Code
		cl.stats.failed++
	}
	cl.rec.add(cl.id, call, ret, in, out)
}

type linParams struct {
	nodes, clients int
	run            time.Duration
	opTimeout      time.Duration
	checkTimeout   time.Duration
}

func TestLinearizableUnderFaults(t *testing.T) {
	params := []linParams{{nodes: 3, clients: 5, run: 8 * time.Second, opTimeout: time.Second, checkTimeout: time.Minute}}
	if *longFlag {
		params = []linParams{
			{nodes: 3, clients: 6, run: 60 * time.Second, opTimeout: time.Second, checkTimeout: 5 * time.Minute},
			{nodes: 5, clients: 6, run: 60 * time.Second, opTimeout: time.Second, checkTimeout: 5 * time.Minute},
		}
	}
	for _, p := range params {
		t.Run(fmt.Sprintf("nodes=%d", p.nodes), func(t *testing.T) { runLin(t, p) })
	}
}

func runLin(t *testing.T, p linParams) {
	seed := testSeed(t)
	c := coretest.NewCluster(t, p.nodes, coretest.WithConfig(func(cfg *core.Config) {
		// Truncate the log often, so restarted nodes catch up by snapshot.
		cfg.SnapshotEntries = 300
		cfg.CatchUpEntries = 50
	}))
	c.Net.SetSeed(seed)
	leader := c.WaitLeader(t.Context())
	setup := mustSession(t, leader, 30*time.Second)
	for k := range linKeys {
		if _, err := setup.create(t.Context(), linPath(k), []byte(linInitial.Value), grove.ModePersistent); err != nil {
			t.Fatalf("create %s: %v", linPath(k), err)
		}
	}
	c.WaitConverged(t.Context())

	rec := &linRecorder{start: time.Now()}
	clients := make([]*linClient, p.clients)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = &linClient{
			id: i, rng: rand.New(rand.NewPCG(seed, uint64(i)+1)), c: c, rec: rec, opTimeout: p.opTimeout,
		}
		wg.Go(func() { clients[i].run(t.Context(), stop) })
	}
	nem := &nemesis{c: c, rng: rand.New(rand.NewPCG(seed, 0)), crashed: map[uint64]bool{}}
	nem.run(t, p.run)
	close(stop)
	wg.Wait()

	// Everyone back, then a final linearizable read of every key on every
	// node joins the history: the final state must agree with it, so a lost
	// acknowledged write fails the check.
	c.Net.Heal()
	for id := range nem.crashed {
		c.Restart(id)
	}
	c.WaitLeader(t.Context())
	c.WaitConverged(t.Context())
	final := len(clients)
	for _, nd := range c.Nodes() {
		for k := range linKeys {
			call := rec.now()
			data, stat, _, err := nd.Get(t.Context(), core.Read{Linearizable: true}, linPath(k))
			out := linOutput{Code: grove.CodeOK, Version: stat.Version, Value: string(data)}
			if errors.Is(err, grove.ErrNoNode) {
				out = linOutput{Code: grove.CodeNoNode}
			} else if err != nil {
				t.Fatalf("final read of %s on node %d: %v", linPath(k), nd.ID(), err)
			}
			rec.add(final, call, rec.now(), linInput{Key: k, Kind: linGet}, out)
		}
		final++
	}

	var total linStats
	for _, cl := range clients {
		total.ok += cl.stats.ok
		total.failed += cl.stats.failed
		total.unknown += cl.stats.unknown
		total.readsLost += cl.stats.readsLost
		total.sessions += cl.stats.sessions
	}
	t.Logf("ops: %d ok, %d refused (version/existence), %d unknown writes, %d reads lost, %d sessions; nemesis: %s",
		total.ok, total.failed, total.unknown, total.readsLost, total.sessions, nem.summary())
	if total.ok+total.failed < 50 {
		t.Errorf("only %d operations completed: the cluster made almost no progress", total.ok+total.failed)
	}
	checkLin(t, rec.history(), p.checkTimeout)
}

// nemesis injects faults from the test goroutine: partitions (a random
// minority cut off), lossy and slow links, heals, crashes and restarts. At
// most a minority is ever crashed.
type nemesis struct {
	c       *coretest.Cluster
	rng     *rand.Rand
	crashed map[uint64]bool
	counts  map[string]int
}

func (nm *nemesis) run(t *testing.T, d time.Duration) {
	t.Helper()
	nm.counts = map[string]int{}
	ids := nm.c.IDs()
	maxDown := (len(ids) - 1) / 2
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		pause := time.NewTimer(time.Duration(100+nm.rng.IntN(400)) * time.Millisecond)
		select {
		case <-pause.C:
		case <-t.Context().Done():
			pause.Stop()
			return
		}
		switch r := nm.rng.IntN(100); {
		case r < 25:
			shuffled := slices.Clone(ids)
			nm.rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if nm.rng.IntN(2) == 0 {
				// Half the time the leader is in the minority: it must stop
				// answering linearizable reads and acknowledging writes.
				for i, id := range shuffled {
					if nd := nm.c.Node(id); nd != nil && nd.IsLeader() {
						shuffled[0], shuffled[i] = shuffled[i], shuffled[0]
						break
					}
				}
			}
			k := 1 + nm.rng.IntN(maxDown)
			nm.c.Net.Heal()
			nm.c.Net.Partition(shuffled[:k], shuffled[k:])
			nm.note(t, fmt.Sprintf("partition %v | %v", shuffled[:k], shuffled[k:]))
		case r < 35:
			from, to := ids[nm.rng.IntN(len(ids))], ids[nm.rng.IntN(len(ids))]
			if from == to {
				continue
			}
			nm.c.Net.Drop(from, to, 0.3)
			nm.c.Net.Delay(to, from, time.Duration(nm.rng.IntN(200))*time.Millisecond)
			nm.note(t, fmt.Sprintf("lossy link %d->%d, slow %d->%d", from, to, to, from))
		case r < 60:
			nm.c.Net.Heal()
			nm.note(t, "heal")
		case r < 80:
			if len(nm.crashed) >= maxDown {
				continue
			}
			id := ids[nm.rng.IntN(len(ids))]
			if nm.crashed[id] {
				continue
			}
			nm.c.Crash(id)
			nm.crashed[id] = true
			nm.note(t, fmt.Sprintf("crash %d", id))
		default:
			for _, id := range ids {
				if nm.crashed[id] {
					nm.c.Restart(id)
					delete(nm.crashed, id)
					nm.note(t, fmt.Sprintf("restart %d", id))
					break
				}
			}
		}
	}
}

func (nm *nemesis) note(t *testing.T, what string) {
	t.Helper()
	nm.counts[strings.Fields(what)[0]]++
	t.Logf("nemesis: %s", what)
}

func (nm *nemesis) summary() string {
	keys := make([]string, 0, len(nm.counts))
	for k := range nm.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", nm.counts[k], k)
	}
	return strings.Join(parts, ", ")
}
