package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func freeAddr(t *testing.T) string { return testutil.FreeAddr(t) }

func fastCore() core.Config {
	c := core.DefaultConfig()
	c.TickInterval = 10 * time.Millisecond
	c.MinSessionTimeout = 200 * time.Millisecond
	return c
}

type testCluster struct {
	t       *testing.T
	seeds   []string
	servers map[string]*Server
	mu      sync.Mutex
}

func (tc *testCluster) config(name string, expect int) Config {
	return Config{
		Name: name, DataDir: filepath.Join(tc.t.TempDir(), name),
		GossipAddr: tc.seedFor(name), PeerAddr: freeAddr(tc.t), HTTPAddr: freeAddr(tc.t),
		Join: tc.seeds, BootstrapExpect: expect, Core: fastCore(),
	}
}

func (tc *testCluster) seedFor(name string) string {
	i := int(name[len(name)-1] - '1')
	if i < len(tc.seeds) {
		return tc.seeds[i]
	}
	return freeAddr(tc.t)
}

// startCluster starts n bootstrap servers n1..nn (concurrently: each waits
// for the others) with mod applied to each config.
func startCluster(t *testing.T, n int, mod func(*Config)) *testCluster {
	tc := &testCluster{t: t, servers: map[string]*Server{}}
	for range n {
		tc.seeds = append(tc.seeds, freeAddr(t))
	}
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		cfg := tc.config(fmt.Sprintf("n%d", i+1), n)
		if mod != nil {
			mod(&cfg)
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := Start(ctx, cfg)
			for try := 0; err != nil && strings.Contains(err.Error(), "address already in use") && try < 3; try++ {
				// Another process took a port between our check and the
				// listen: pick fresh peer and HTTP ports (gossip seeds stay).
				cfg.PeerAddr, cfg.HTTPAddr = freeAddr(t), freeAddr(t)
				s, err = Start(ctx, cfg)
			}
			if err != nil {
				errc <- fmt.Errorf("%s: %w", cfg.Name, err)
				return
			}
			tc.mu.Lock()
			tc.servers[cfg.Name] = s
			tc.mu.Unlock()
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range tc.all() {
			_ = s.Stop()
		}
	})
	return tc
}

func (tc *testCluster) all() []*Server {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var out []*Server
	for _, s := range tc.servers {
		out = append(out, s)
	}
	return out
}

func (tc *testCluster) leader() *Server {
	for _, s := range tc.all() {
		if s.node.IsLeader() {
			return s
		}
	}
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, s *Server, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func httpDo(t *testing.T, method string, s *Server, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+s.HTTPAddr()+path, strings.NewReader(body))
	req.Header.Set(GroveRequestHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestStatusHealthMetricsAndData(t *testing.T) {
	tc := startCluster(t, 3, nil)
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	leader := tc.leader()
	var follower *Server
	for _, s := range tc.all() {
		if s != leader {
			follower = s
		}
	}
	waitFor(t, "every node healthy", func() bool {
		for _, s := range tc.all() {
			if code, _ := httpGet(t, s, "/healthz"); code != http.StatusOK {
				return false
			}
		}
		return true
	})
	code, body := httpGet(t, follower, "/status")
	var st StatusReply
	if code != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Fatalf("/status: %d %s", code, body)
	}
	if st.Name != follower.cfg.Name || st.Role != "follower" || st.Leader != leader.cfg.Name || st.Term == 0 ||
		st.AppliedIndex == 0 || st.CommitIndex == 0 || len(st.Voters) != 3 || len(st.GossipMembers) != 3 {
		t.Fatalf("/status: %+v", st)
	}
	for _, m := range st.GossipMembers {
		if m.State != "alive" || m.RaftRole != "voter" {
			t.Fatalf("gossip member %+v", m)
		}
	}
	if code, body := httpDo(t, http.MethodPut, follower, "/v1/znode/cfg", "v1"); code != http.StatusOK {
		t.Fatalf("PUT through follower: %d %s", code, body)
	}
	if code, body := httpGet(t, leader, "/v1/znode/cfg?linearizable=1"); code != http.StatusOK || string(body) != "v1" {
		t.Fatalf("GET through leader: %d %q", code, body)
	}
	if code, _ := httpDo(t, http.MethodPut, follower, "/v1/znode/cfg", "again"); code != http.StatusConflict {
		t.Fatalf("second create: %d, want 409", code)
	}
	if code, _ := httpGet(t, leader, "/v1/znode/missing"); code != http.StatusNotFound {
		t.Fatalf("missing node: %d", code)
	}
	_, metrics := httpGet(t, leader, "/metrics")
	for _, name := range []string{"grove_raft_term", "grove_raft_commit_index", "grove_raft_applied_index",
		"grove_proposals_total", "grove_log_fsync_duration_seconds_bucket", "grove_sessions", "grove_znodes", "grove_watches"} {
		if !strings.Contains(string(metrics), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestDeadVoterCleanupRespectsMinimum(t *testing.T) {
	kept := &keptVoterLog{times: map[string]int{}}
	tc := startCluster(t, 3, func(c *Config) {
		c.CleanupDeadAfter = 500 * time.Millisecond
		c.MinVoters = 3
		c.Logger = slog.New(kept)
	})
	// A fourth voter joins, so one dead voter may go.
	cfg := tc.config("n4", 0)
	cfg.CleanupDeadAfter, cfg.MinVoters = 500*time.Millisecond, 3
	cfg.Logger = slog.New(kept)
	n4, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc.mu.Lock()
	tc.servers["n4"] = n4
	tc.mu.Unlock()
	waitFor(t, "four voters", func() bool {
		l := tc.leader()
		return l != nil && len(l.node.Status().Voters) == 4
	})
	var victims []*Server
	for _, s := range tc.all() {
		if !s.node.IsLeader() {
			victims = append(victims, s)
		}
	}
	first, second := victims[0], victims[1]
	firstID := first.ID()
	_ = first.Stop() // dies without leaving
	waitFor(t, "the dead voter to be removed", func() bool {
		l := tc.leader()
		return l != nil && !slices.Contains(l.node.Status().Voters, firstID) && len(l.node.Status().Voters) == 3
	})
	secondID := second.ID()
	_ = second.Stop()
	// Removing it would leave 2 < MinVoters: it stays, and /status says so.
	waitFor(t, "drift to show the second dead voter", func() bool {
		l := tc.leader()
		if l == nil {
			return false
		}
		for _, d := range l.Status().Drift {
			if strings.Contains(d, idString(secondID)) {
				return true
			}
		}
		return false
	})
	// The leader's cleanup has looked at it, dead for longer than
	// CleanupDeadAfter, and kept it, twice: it must still be a voter.
	waitFor(t, "the cleanup to keep the second dead voter twice", func() bool { return kept.count(second.cfg.Name) >= 2 })
	if l := tc.leader(); l == nil || !slices.Contains(l.node.Status().Voters, secondID) {
		t.Fatal("cleanup went below the minimum number of voters")
	}
}

// keptVoterLog is a slog handler counting, per member, the leader's
// "dead voter kept" warnings: the evidence that a cleanup pass saw a dead
// voter and refused to remove it.
type keptVoterLog struct {
	mu    sync.Mutex
	times map[string]int
}

func (h *keptVoterLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *keptVoterLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *keptVoterLog) WithGroup(string) slog.Handler            { return h }

func (h *keptVoterLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "dead voter kept") {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "member" {
			h.mu.Lock()
			h.times[a.Value.String()]++
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *keptVoterLog) count(member string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.times[member]
}

func TestRemoveMemberThroughFollower(t *testing.T) {
	tc := startCluster(t, 3, nil)
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	leader := tc.leader()
	var followers []*Server
	for _, s := range tc.all() {
		if s != leader {
			followers = append(followers, s)
		}
	}
	victim, via := followers[0], followers[1]
	_ = victim.Stop()
	code, body := httpDo(t, http.MethodPost, via, "/members/remove?name="+victim.cfg.Name, "")
	if code != http.StatusOK {
		t.Fatalf("remove through follower: %d %s", code, body)
	}
	waitFor(t, "removal", func() bool { return !slices.Contains(leader.node.Status().Voters, victim.ID()) })
	if code, _ := httpDo(t, http.MethodPost, via, "/members/remove?name=nobody", ""); code != http.StatusNotFound {
		t.Fatalf("remove unknown member: %d", code)
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	bad := []Config{
		{},
		{Name: "x"},
		{Name: "x", DataDir: t.TempDir(), GossipAddr: "nope", PeerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"},
		{Name: "x", DataDir: t.TempDir(), GossipAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", BootstrapExpect: -1},
		{Name: "x", DataDir: t.TempDir(), GossipAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", GossipKey: []byte("short")},
		{Name: "x", DataDir: t.TempDir(), GossipAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Learner: true, BootstrapExpect: 3},
	}
	for i, cfg := range bad {
		if s, err := Start(t.Context(), cfg); err == nil {
			_ = s.Stop()
			t.Errorf("config %d accepted", i)
		}
	}
}

// The profiler is served only when asked for; /v1/backup streams a backup
// file.
func TestPprofIsOptInAndBackupStreams(t *testing.T) {
	tc := startCluster(t, 1, func(c *Config) { c.Pprof = true })
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	s := tc.leader()
	if code, _ := httpGet(t, s, "/debug/pprof/"); code != http.StatusOK {
		t.Fatalf("/debug/pprof/ with Pprof: %d", code)
	}
	if code, body := httpGet(t, s, "/v1/backup"); code != http.StatusOK || !bytes.HasPrefix(body, []byte("GROVEBAK")) {
		t.Fatalf("/v1/backup: %d, %d bytes", code, len(body))
	}
	plain := startCluster(t, 1, nil)
	waitFor(t, "a leader", func() bool { return plain.leader() != nil })
	if code, _ := httpGet(t, plain.leader(), "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("/debug/pprof/ without Pprof: %d", code)
	}
}
