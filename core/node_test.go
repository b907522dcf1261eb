package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// session is a tiny helper that numbers a session's writes.
type session struct {
	n   *core.Node
	id  uint64
	seq uint64
	mu  sync.Mutex
}

func mustSession(t *testing.T, n *core.Node, timeout time.Duration) *session {
	t.Helper()
	info, err := n.CreateSession(t.Context(), timeout)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	return &session{n: n, id: info.ID}
}

func (s *session) next() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

func (s *session) submit(ctx context.Context, req core.Request) (*core.Result, error) {
	req.Session = s.id
	req.Seq = s.next()
	return s.n.Submit(ctx, &req)
}

func (s *session) create(ctx context.Context, path string, data []byte, mode grove.CreateMode) (string, error) {
	res, err := s.submit(ctx, core.Request{Op: core.OpCreate, Path: path, Data: data, Mode: mode, ACL: grove.OpenACLUnsafe})
	if err != nil {
		return "", err
	}
	return res.Path, grove.CodeError(res.Code)
}

func mustStartSingle(t *testing.T, dir string, mod ...func(*core.Config)) *core.Node {
	t.Helper()
	cfg := coretest.FastConfig()
	cfg.ID = 1
	cfg.DataDir = dir
	cfg.Peers = []core.Peer{{ID: 1}}
	for _, m := range mod {
		m(&cfg)
	}
	n, err := core.StartNode(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

type eventLog struct {
	mu  sync.Mutex
	evs []grove.Event
	ch  chan struct{}
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan struct{}, 1<<16)} }

func (l *eventLog) Deliver(ev grove.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
	select { // Deliver must never block
	case l.ch <- struct{}{}:
	default:
	}
}

func (l *eventLog) events() []grove.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]grove.Event(nil), l.evs...)
}

func TestSingleNodeBasics(t *testing.T) {
	n := mustStartSingle(t, t.TempDir())
	ctx := t.Context()
	s := mustSession(t, n, time.Second)
	p, err := s.create(ctx, "/a", []byte("one"), grove.ModePersistent)
	if err != nil || p != "/a" {
		t.Fatalf("create: %q %v", p, err)
	}
	data, stat, zxid, err := n.Get(ctx, core.Read{}, "/a")
	if err != nil || string(data) != "one" || stat.Version != 0 || zxid == 0 || stat.Czxid <= 0 {
		t.Fatalf("get: %q %+v %d %v", data, stat, zxid, err)
	}
	res, err := s.submit(ctx, core.Request{Op: core.OpSetData, Path: "/a", Data: []byte("two"), Version: 0})
	if err != nil || res.Code != grove.CodeOK || res.Stat.Version != 1 {
		t.Fatalf("set: %+v %v", res, err)
	}
	res, err = s.submit(ctx, core.Request{Op: core.OpSetData, Path: "/a", Data: []byte("x"), Version: 0})
	if err != nil || !errors.Is(grove.CodeError(res.Code), grove.ErrBadVersion) {
		t.Fatalf("set with stale version: %+v %v", res, err)
	}
	for _, name := range []string{"c", "b"} {
		if _, err := s.create(ctx, "/a/"+name, nil, grove.ModePersistent); err != nil {
			t.Fatal(err)
		}
	}
	names, pstat, more, _, err := n.Children(ctx, core.Read{}, "/a", "", 0)
	if err != nil || len(names) != 2 || names[0] != "b" || more || pstat.NumChildren != 2 {
		t.Fatalf("children: %v %+v %v %v", names, pstat, more, err)
	}
	if _, _, _, err := n.Get(ctx, core.Read{}, "/missing"); !errors.Is(err, grove.ErrNoNode) {
		t.Fatalf("get missing: %v", err)
	}
	if _, _, _, err := n.Get(ctx, core.Read{}, "bad//path"); !errors.Is(err, grove.ErrBadArguments) {
		t.Fatalf("get bad path: %v", err)
	}
	if _, err := n.Sync(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
	big := make([]byte, 2<<20)
	if _, err := s.create(ctx, "/big", big, grove.ModePersistent); !errors.Is(err, grove.ErrTooLarge) {
		t.Fatalf("oversized create: %v", err)
	}
}

func TestRetriedRequestGetsOriginalResult(t *testing.T) {
	n := mustStartSingle(t, t.TempDir())
	ctx := t.Context()
	s := mustSession(t, n, time.Second)
	req := core.Request{Session: s.id, Seq: 1, Op: core.OpCreate, Path: "/q-", Mode: grove.ModePersistentSequential, ACL: grove.OpenACLUnsafe}
	first, err := n.Submit(ctx, &req)
	if err != nil || first.Code != grove.CodeOK {
		t.Fatalf("first: %+v %v", first, err)
	}
	again, err := n.Submit(ctx, &req)
	if err != nil || again.Path != first.Path {
		t.Fatalf("retry got %+v (first %+v) %v", again, first, err)
	}
	names, _, _, _, err := n.Children(ctx, core.Read{}, "/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, nm := range names {
		if len(nm) > 2 && nm[:2] == "q-" {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("retry created %d sequential nodes, want 1: %v", count, names)
	}
}

func TestWatchesFireBeforeReply(t *testing.T) {
	n := mustStartSingle(t, t.TempDir())
	ctx := t.Context()
	s := mustSession(t, n, time.Second)
	if _, err := s.create(ctx, "/w", nil, grove.ModePersistent); err != nil {
		t.Fatal(err)
	}
	watcher := newEventLog()
	r := core.Read{Session: s.id, Watch: watcher}
	if _, _, _, err := n.Get(ctx, r, "/w"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := n.Children(ctx, r, "/w", "", 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Exists(ctx, r, "/w/new"); !errors.Is(err, grove.ErrNoNode) {
		t.Fatal(err)
	}
	if _, err := n.AddWatch(s.id, "/w", grove.WatchPersistentRecursive, nil, watcher); err != nil {
		t.Fatal(err)
	}
	// The reply of each write comes after the events it caused.
	if _, err := s.create(ctx, "/w/new", nil, grove.ModePersistent); err != nil {
		t.Fatal(err)
	}
	got := watcher.events()
	want := []grove.Event{{Type: grove.EventNodeCreated, Path: "/w/new"}, {Type: grove.EventNodeChildrenChanged, Path: "/w"}}
	if !sameEvents(got, want) {
		t.Fatalf("after create: %v, want %v", got, want)
	}
	if _, err := s.submit(ctx, core.Request{Op: core.OpSetData, Path: "/w", Data: []byte("d"), Version: -1}); err != nil {
		t.Fatal(err)
	}
	// The one-shot data watch and the recursive watch both match: one event.
	if _, err := s.submit(ctx, core.Request{Op: core.OpSetData, Path: "/w", Data: []byte("e"), Version: -1}); err != nil {
		t.Fatal(err)
	}
	got = watcher.events()[2:]
	want = []grove.Event{{Type: grove.EventNodeDataChanged, Path: "/w"}, {Type: grove.EventNodeDataChanged, Path: "/w"}}
	if !sameEvents(got, want) {
		t.Fatalf("after two sets: %v, want %v (recursive watch persists, one event per change)", got, want)
	}
	if err := n.RemoveWatches(s.id, "/w", grove.WatchPersistentRecursive); err != nil {
		t.Fatal(err)
	}
	if err := n.RemoveWatches(s.id, "/w", grove.WatchPersistentRecursive); !errors.Is(err, grove.ErrNoWatcher) {
		t.Fatalf("second remove: %v", err)
	}
	if _, err := s.submit(ctx, core.Request{Op: core.OpSetData, Path: "/w", Data: []byte("f"), Version: -1}); err != nil {
		t.Fatal(err)
	}
	if k := len(watcher.events()); k != 4 {
		t.Fatalf("events after all watches are gone: %v", watcher.events())
	}
}

func sameEvents(got, want []grove.Event) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Type != want[i].Type || got[i].Path != want[i].Path || got[i].Zxid <= 0 {
			return false
		}
	}
	return true
}

// A session that never keeps alive expires and takes its ephemerals with
// it, in a synctest bubble (the 300 ms timeout passes on a fake clock).
func TestSessionExpiryRemovesEphemerals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustStartSingle(t, t.TempDir())
		ctx := t.Context()
		owner := mustSession(t, n, 300*time.Millisecond)
		keeper := mustSession(t, n, 10*time.Second)
		if _, err := owner.create(ctx, "/eph", nil, grove.ModeEphemeral); err != nil {
			t.Fatal(err)
		}
		w := newEventLog()
		if _, _, err := n.Exists(ctx, core.Read{Session: keeper.id, Watch: w}, "/eph"); err != nil {
			t.Fatal(err)
		}
		// owner never keeps alive: the leader expires it and the node vanishes.
		select {
		case <-w.ch:
		case <-time.After(10 * time.Second):
			t.Fatal("ephemeral not removed after the session timeout")
		}
		if ev := w.events()[0]; ev.Type != grove.EventNodeDeleted || ev.Path != "/eph" {
			t.Fatalf("event %v", ev)
		}
		if _, err := owner.create(ctx, "/eph2", nil, grove.ModeEphemeral); !errors.Is(err, grove.ErrSessionExpired) {
			t.Fatalf("write on expired session: %v", err)
		}
		if _, err := n.KeepAlive(ctx, owner.id); !errors.Is(err, grove.ErrSessionExpired) {
			t.Fatalf("keepalive on expired session: %v", err)
		}
		left, err := n.KeepAlive(ctx, keeper.id)
		if err != nil || left <= 0 {
			t.Fatalf("keepalive: %v %v", left, err)
		}
		st, err := n.Stats()
		if err != nil || st.SessionsExpired != 1 {
			t.Fatalf("stats count %d expired sessions (%v), want 1", st.SessionsExpired, err)
		}
	})
}

func TestRestartFromDisk(t *testing.T) {
	dir := t.TempDir()
	n := mustStartSingle(t, dir)
	ctx := t.Context()
	s := mustSession(t, n, 10*time.Second)
	for i := range 50 {
		if _, err := s.create(ctx, "/r-", []byte{byte(i)}, grove.ModePersistentSequential); err != nil {
			t.Fatal(err)
		}
	}
	before, applied, err := n.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, err := s.create(ctx, "/after", nil, grove.ModePersistent); !errors.Is(err, grove.ErrStopped) {
		t.Fatalf("write after close: %v", err)
	}
	n2 := mustStartSingle(t, dir, func(c *core.Config) { c.Peers = nil })
	after, applied2, err := n2.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if after != before || applied2 < applied {
		t.Fatalf("state after restart differs: %x@%d vs %x@%d", after, applied2, before, applied)
	}
	// It keeps serving writes once it has elected itself again.
	s2 := &session{n: n2, id: s.id, seq: s.seq - 1} // the refused write used no seq
	if _, err := s2.create(ctx, "/after", nil, grove.ModePersistent); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
}

func TestCorruptDataFileIsRefused(t *testing.T) {
	ctx := t.Context()
	cases := map[string]func(t *testing.T, path string){
		"random bytes": func(t *testing.T, path string) {
			must(t, os.WriteFile(path, bytes.Repeat([]byte{0xab, 0x17}, 40000), 0o600))
		},
		"empty file": func(t *testing.T, path string) {
			must(t, os.WriteFile(path, nil, 0o600))
		},
		"truncated": func(t *testing.T, path string) {
			good := filepath.Join(t.TempDir(), "good")
			n := mustStartSingle(t, good)
			must(t, n.Close())
			b, err := os.ReadFile(filepath.Join(good, "grove.db"))
			must(t, err)
			must(t, os.WriteFile(path, b[:3*4096], 0o600)) // meta pages survive, data pages do not
		},
		"foreign bbolt file": func(t *testing.T, path string) {
			db, err := bbolt.Open(path, 0o600, nil)
			must(t, err)
			must(t, db.Update(func(tx *bbolt.Tx) error {
				_, err := tx.CreateBucket([]byte("someone-elses"))
				return err
			}))
			must(t, db.Close())
		},
		"other node's file": func(t *testing.T, path string) {
			other := filepath.Join(t.TempDir(), "other")
			n := mustStartSingle(t, other, func(c *core.Config) { c.ID = 7; c.Peers = []core.Peer{{ID: 7}} })
			must(t, n.Close())
			b, err := os.ReadFile(filepath.Join(other, "grove.db"))
			must(t, err)
			must(t, os.WriteFile(path, b, 0o600))
		},
	}
	for name, prepare := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "grove.db")
			prepare(t, path)
			orig, err := os.ReadFile(path)
			must(t, err)
			cfg := coretest.FastConfig()
			cfg.ID, cfg.DataDir, cfg.Peers = 1, dir, []core.Peer{{ID: 1}}
			n, err := core.StartNode(ctx, cfg)
			if err == nil {
				_ = n.Close()
				t.Fatal("StartNode accepted a bad data file")
			}
			if !errors.Is(err, grove.ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(path)) {
				t.Fatalf("error %q does not wrap ErrCorrupt and name %s", err, path)
			}
			now, err := os.ReadFile(path)
			must(t, err)
			if !bytes.Equal(now, orig) {
				t.Fatal("StartNode modified the refused file")
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []core.Config{
		{},
		{ID: 1},
		{ID: 1, DataDir: "x", ElectionTicks: 1, HeartbeatTicks: 2},
		{ID: 1, DataDir: "x", Peers: []core.Peer{{ID: 2}}},
		{ID: 1, DataDir: "x", Peers: []core.Peer{{ID: 1}, {ID: 1}}},
		{ID: 1, DataDir: "x", Peers: []core.Peer{{ID: 1}, {ID: 2}}},
		{ID: 1, DataDir: "x", MinSessionTimeout: time.Minute, MaxSessionTimeout: time.Second},
	}
	for i, cfg := range bad {
		if n, err := core.StartNode(t.Context(), cfg); err == nil {
			_ = n.Close()
			t.Errorf("config %d accepted: %+v", i, cfg)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOvertakingRequestIsAppliedInOrder(t *testing.T) {
	n := mustStartSingle(t, t.TempDir())
	ctx := t.Context()
	s := mustSession(t, n, 10*time.Second)
	// seq 2 is proposed before seq 1: it must wait for 1 and apply after it.
	second, err := n.Begin(ctx, &core.Request{Session: s.id, Seq: 2, Op: core.OpSetData, Path: "/o", Data: []byte("2"), Version: -1})
	must(t, err)
	first, err := n.Begin(ctx, &core.Request{Session: s.id, Seq: 1, Op: core.OpCreate, Path: "/o", Data: []byte("1"), ACL: grove.OpenACLUnsafe})
	must(t, err)
	r2, err := second.Wait(ctx)
	must(t, err)
	r1, err := first.Wait(ctx)
	must(t, err)
	if r1.Code != grove.CodeOK || r2.Code != grove.CodeOK || r2.Stat.Version != 1 {
		t.Fatalf("results %+v %+v", r1, r2)
	}
	data, _, _, err := n.Get(ctx, core.Read{}, "/o")
	if err != nil || string(data) != "2" {
		t.Fatalf("final data %q %v", data, err)
	}
}

// Random byte flips past the meta pages must either be refused with a clear
// error or leave a node that starts and serves; never a crash.
func TestBitFlippedDataFileNeverCrashes(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good")
	n := mustStartSingle(t, good)
	s := mustSession(t, n, 10*time.Second)
	for i := range 300 {
		if _, err := s.create(t.Context(), fmt.Sprintf("/n%d", i), make([]byte, 100), grove.ModePersistent); err != nil {
			t.Fatal(err)
		}
	}
	must(t, n.Close())
	orig, err := os.ReadFile(filepath.Join(good, "grove.db"))
	must(t, err)
	const trials = 30
	refused := 0
	for trial := range trials {
		b := append([]byte(nil), orig...)
		r := rand.New(rand.NewPCG(uint64(trial), 11))
		for range 20 {
			b[8192+r.IntN(min(len(b), 160<<10)-8192)] ^= byte(1 + r.IntN(255)) // within the pages in use
		}
		dir := filepath.Join(t.TempDir(), fmt.Sprint(trial))
		must(t, os.MkdirAll(dir, 0o750))
		must(t, os.WriteFile(filepath.Join(dir, "grove.db"), b, 0o600))
		cfg := coretest.FastConfig()
		cfg.ID, cfg.DataDir = 1, dir
		nd, err := core.StartNode(t.Context(), cfg)
		if err != nil {
			if !errors.Is(err, grove.ErrCorrupt) {
				t.Fatalf("trial %d: refused without ErrCorrupt: %v", trial, err)
			}
			refused++
			continue
		}
		for i := range 300 {
			_, _, _, _ = nd.Get(t.Context(), core.Read{}, fmt.Sprintf("/n%d", i))
		}
		must(t, nd.Close())
	}
	t.Logf("%d of %d corrupted files refused, the rest started", refused, trials)
}
