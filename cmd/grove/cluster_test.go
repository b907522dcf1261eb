package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/testutil"
	"github.com/grovekit/grove/server"
)

// groveBins are the grove binaries built once per test run, with and
// without the race detector.
var groveBins = map[bool]string{}

// buildGroveBin builds the grove binary once (race: with -race).
func buildGroveBin(t *testing.T, race bool) string {
	t.Helper()
	if bin := groveBins[race]; bin != "" {
		return bin
	}
	dir, err := os.MkdirTemp("", "grove-bin-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "grove")
	args := []string{"build", "-o", bin, "."}
	if race {
		args = []string{"build", "-race", "-o", bin, "."}
	}
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build grove: %v", err)
	}
	groveBins[race] = bin
	return bin
}

// buildGrove returns the race-enabled grove binary for the process tests.
func buildGrove(t *testing.T) string { return buildGroveBin(t, true) }

func freePort(t *testing.T) string { return testutil.FreeAddr(t) }

// proc is one grove server process.
type proc struct {
	name, dir             string
	gossip, peer, httpAdr string
	client, zk            string // native and ZooKeeper client ports
	args                  []string
	cmd                   *exec.Cmd
	done                  chan struct{}
	log                   *os.File
}

type procCluster struct {
	t     *testing.T
	bin   string
	base  string
	procs map[string]*proc
	seeds []string // the gossip addresses of the first three nodes
	// common flags are given to every server the cluster starts.
	common []string
}

// newProcCluster returns an empty cluster of grove server processes; a
// test that makes one is skipped under -short.
func newProcCluster(t *testing.T) *procCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test; run without -short")
	}
	return &procCluster{t: t, bin: buildGrove(t), base: t.TempDir(), procs: map[string]*proc{}}
}

// startThree starts n1..n3 (named prefix1..prefix3) bootstrapping one
// cluster, waits for a leader and dumps the logs if the test fails.
func (c *procCluster) startThree(prefix string) []*proc {
	c.t.Helper()
	var all []*proc
	for i := 1; i <= 3; i++ {
		all = append(all, c.add(fmt.Sprintf("%s%d", prefix, i), "--bootstrap-expect", "3"))
	}
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(all...) != nil })
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.dumpLogs()
		}
	})
	return all
}

func (c *procCluster) add(name string, extra ...string) *proc {
	c.t.Helper()
	p := &proc{name: name, dir: filepath.Join(c.base, name), gossip: freePort(c.t), peer: freePort(c.t), httpAdr: freePort(c.t), client: freePort(c.t), zk: freePort(c.t)}
	if len(c.seeds) < 3 {
		c.seeds = append(c.seeds, p.gossip)
	}
	p.args = append([]string{"server", "--name", name, "--data-dir", p.dir, "--gossip-addr", p.gossip,
		"--peer-addr", p.peer, "--http-addr", p.httpAdr, "--client-addr", p.client, "--zk-addr", p.zk, "--join", strings.Join(c.seeds, ","), "--log-level", "info"}, append(slices.Clone(c.common), extra...)...)
	c.procs[name] = p
	c.start(p)
	c.t.Cleanup(func() { c.kill(p) })
	return p
}

func (c *procCluster) start(p *proc) {
	c.t.Helper()
	p.cmd = exec.Command(c.bin, p.args...)
	logf, err := os.OpenFile(filepath.Join(c.base, p.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	p.log = logf
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}, f *os.File) {
		_ = cmd.Wait()
		_ = f.Close()
		close(done)
	}(p.cmd, p.done, logf)
}

func (c *procCluster) kill(p *proc) {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (c *procCluster) terminate(p *proc) {
	c.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s did not exit after SIGTERM", p.name)
	}
}

func (c *procCluster) dumpLogs() {
	for name := range c.procs {
		b, _ := os.ReadFile(filepath.Join(c.base, name+".log"))
		lines := strings.Split(string(b), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		c.t.Logf("--- %s log tail ---\n%s", name, strings.Join(lines, "\n"))
	}
}

// hc is the tests' HTTP client; like the CLI's it marks requests as a
// Grove tool's, and it sends the token of testTokenFile, or else the
// per-user token the servers use by default.
var hc = &http.Client{Timeout: 3 * time.Second, Transport: testTransport{http.DefaultTransport}}

// testTokenFile is the HTTP token file the current test's servers want
// ("" none); writeSecrets sets it for the test.
var testTokenFile atomic.Value // string

// testTransport adds the Grove header and testTokenFile's token.
type testTransport struct{ base http.RoundTripper }

func (t testTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(server.GroveRequestHeader, "1")
	file, _ := testTokenFile.Load().(string)
	if file == "" {
		file = defaultTokenFile() // the servers' per-user token
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
	}
	return t.base.RoundTrip(r)
}

func status(addr string) (server.StatusReply, error) {
	var st server.StatusReply
	resp, err := hc.Get("http://" + addr + "/status")
	if err != nil {
		return st, err
	}
	defer func() { _ = resp.Body.Close() }()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func put(addr, path, data string) error { return putWith(hc, addr, path, data) }

// statusError is a non-200 answer of the HTTP data API.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// putWith creates path with data through addr's HTTP data API.
func putWith(client *http.Client, addr, path, data string) error {
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/znode"+path, strings.NewReader(data))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return &statusError{code: resp.StatusCode, msg: fmt.Sprintf("PUT %s: %s %s", path, resp.Status, b)}
	}
	return nil
}

func get(addr, path string) (string, error) {
	resp, err := hc.Get("http://" + addr + "/v1/znode" + path)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s %s", path, resp.Status, b)
	}
	return string(b), nil
}

func digest(addr string) (string, error) {
	var d struct {
		Digest  string `json:"digest"`
		Applied uint64 `json:"applied_index"`
	}
	resp, err := hc.Get("http://" + addr + "/v1/digest")
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s@%d", d.Digest, d.Applied), nil
}

func (c *procCluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.dumpLogs()
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *procCluster) leader(among ...*proc) *proc {
	for _, p := range among {
		st, err := status(p.httpAdr)
		if err == nil && st.Role == "leader" {
			return p
		}
	}
	return nil
}

func (c *procCluster) converged(ps ...*proc) bool {
	var first string
	for i, p := range ps {
		d, err := digest(p.httpAdr)
		if err != nil {
			return false
		}
		if i == 0 {
			first = d
		} else if d != first {
			return false
		}
	}
	return true
}

func voterNames(st server.StatusReply) []string {
	var names []string
	for _, v := range st.Voters {
		names = append(names, v.Name)
	}
	slices.Sort(names)
	return names
}

// ackLog records acknowledged writes.
type ackLog struct {
	mu    sync.Mutex
	paths []string
}

func (a *ackLog) add(p string) {
	a.mu.Lock()
	a.paths = append(a.paths, p)
	a.mu.Unlock()
}

func (a *ackLog) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.paths)
}

// TestThreeProcessCluster is the real-cluster acceptance test: three grove
// server processes bootstrap by gossip, take writes through each of them,
// lose their leader to SIGKILL while a writer runs, get it back from its
// data dir, then grow by a --join node, shrink by a graceful leave and by
// an operator's removal of a SIGKILLed node.
func TestThreeProcessCluster(t *testing.T) {
	c := newProcCluster(t)
	// --leave-on-terminate: one of them leaves by SIGTERM below.
	n1 := c.add("n1", "--bootstrap-expect", "3", "--leave-on-terminate")
	n2 := c.add("n2", "--bootstrap-expect", "3", "--leave-on-terminate")
	n3 := c.add("n3", "--bootstrap-expect", "3", "--leave-on-terminate")
	all := []*proc{n1, n2, n3}
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(all...) != nil })

	acks := &ackLog{}
	for _, p := range all {
		path := fmt.Sprintf("/through-%s", p.name)
		if err := put(p.httpAdr, path, "x"); err != nil {
			t.Fatalf("write through %s: %v", p.name, err)
		}
		acks.add(path)
	}

	// A writer runs against the two followers while the leader is killed.
	old := c.leader(all...)
	var others []*proc
	for _, p := range all {
		if p != old {
			others = append(others, p)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			p := others[i%len(others)]
			path := fmt.Sprintf("/w-%d", i)
			if put(p.httpAdr, path, path) == nil {
				acks.add(path)
			}
		}
	})
	before := len(acks.all())
	c.waitFor("the writer to get writes acknowledged before the kill", 30*time.Second,
		func() bool { return len(acks.all()) >= before+5 })
	killedAt := time.Now()
	c.kill(old)
	var newLeader *proc
	c.waitFor("a new leader", 30*time.Second, func() bool { newLeader = c.leader(others...); return newLeader != nil })
	firstWrite := time.Now()
	c.waitFor("a write after failover", 30*time.Second, func() bool {
		if put(newLeader.httpAdr, fmt.Sprintf("/probe-%d", time.Now().UnixNano()), "p") == nil {
			firstWrite = time.Now()
			return true
		}
		return false
	})
	t.Logf("leader SIGKILL → first successful write: %v", firstWrite.Sub(killedAt))
	after := len(acks.all())
	c.waitFor("the writer to get writes acknowledged after the failover", 30*time.Second,
		func() bool { return len(acks.all()) >= after+5 })
	cancel()
	wg.Wait()

	// The killed node comes back from its data dir and catches up.
	c.start(old)
	c.waitFor("convergence after restart", 60*time.Second, func() bool { return c.converged(all...) })
	paths := acks.all()
	if len(paths) < 10 {
		t.Fatalf("only %d writes acknowledged", len(paths))
	}
	for _, p := range all {
		for _, path := range paths {
			if _, err := get(p.httpAdr, path); err != nil {
				t.Fatalf("%s lost acknowledged write %s: %v", p.name, path, err)
			}
		}
	}
	t.Logf("%d acknowledged writes present on all three nodes", len(paths))

	// A fourth node joins (learner, then voter).
	n4 := c.add("n4")
	all = append(all, n4)
	c.waitFor("n4 to become a voter", 60*time.Second, func() bool {
		st, err := status(n1.httpAdr)
		return err == nil && slices.Contains(voterNames(st), "n4")
	})

	// One node leaves gracefully (SIGTERM).
	var leaving *proc
	for _, p := range []*proc{n2, n3, n1} {
		if c.leader(p) == nil {
			leaving = p
			break
		}
	}
	c.terminate(leaving)
	c.waitFor(leaving.name+" to leave the voters", 30*time.Second, func() bool {
		for _, p := range all {
			if p == leaving {
				continue
			}
			if st, err := status(p.httpAdr); err == nil && st.Role == "leader" {
				return !slices.Contains(voterNames(st), leaving.name) && len(st.Voters) == 3
			}
		}
		return false
	})

	// Another is SIGKILLed and removed by the operator.
	var rest []*proc
	for _, p := range all {
		if p != leaving {
			rest = append(rest, p)
		}
	}
	var victim *proc
	for _, p := range rest {
		if c.leader(p) == nil {
			victim = p
			break
		}
	}
	c.kill(victim)
	var alive []*proc
	for _, p := range rest {
		if p != victim {
			alive = append(alive, p)
		}
	}
	out, err := exec.Command(c.bin, "members", "remove", victim.name, "--http", alive[0].httpAdr).CombinedOutput()
	// flags after the positional args are not parsed by package flag: pass it first.
	if err != nil {
		out, err = exec.Command(c.bin, "members", "--http", alive[0].httpAdr, "remove", victim.name).CombinedOutput()
	}
	if err != nil {
		c.dumpLogs()
		t.Fatalf("grove members remove: %v: %s", err, out)
	}
	c.waitFor(victim.name+" to be removed", 30*time.Second, func() bool {
		st, err := status(alive[0].httpAdr)
		return err == nil && !slices.Contains(voterNames(st), victim.name) && len(st.Voters) == 2
	})
	if err := put(alive[0].httpAdr, "/after-removals", "ok"); err != nil {
		t.Fatalf("write with two voters left: %v", err)
	}
	c.waitFor("convergence of the survivors", 30*time.Second, func() bool { return c.converged(alive...) })
}

// TestTerminateKeepsMembership stops every node of a default cluster with
// SIGTERM, one after the other, as a rolling restart or a host shutdown
// would, and starts them again from their data dirs: the cluster comes
// back with its three voters and its data. Before, SIGTERM left the
// cluster for good by default, and stopping all three destroyed it.
func TestTerminateKeepsMembership(t *testing.T) {
	c := newProcCluster(t)
	all := c.startThree("r")
	if err := put(all[0].httpAdr, "/kept", "x"); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the write everywhere", 30*time.Second, func() bool { return c.converged(all...) })
	for _, p := range all {
		c.terminate(p)
	}
	for _, p := range all {
		c.start(p)
	}
	c.waitFor("a leader after the restart", 60*time.Second, func() bool { return c.leader(all...) != nil })
	st, err := status(c.leader(all...).httpAdr)
	if err != nil {
		t.Fatal(err)
	}
	if names := voterNames(st); len(names) != 3 {
		t.Fatalf("voters after SIGTERM and restart: %v", names)
	}
	if got, err := get(all[1].httpAdr, "/kept"); err != nil || got != "x" {
		t.Fatalf("data after the restart: %q, %v", got, err)
	}
}

// TestSingleNodeJustWorks starts grove server with neither --join nor
// --bootstrap-expect (only its data dir and free ports) and uses it at
// once through the CLI: a fresh data dir forms a cluster of one. Restarted
// from the same data dir it serves the same data.
func TestSingleNodeJustWorks(t *testing.T) {
	c := newProcCluster(t)
	p := &proc{name: "solo", dir: filepath.Join(c.base, "solo"), gossip: freePort(t), peer: freePort(t),
		httpAdr: freePort(t), client: freePort(t), zk: freePort(t)}
	p.args = []string{"server", "--data-dir", p.dir, "--gossip-addr", p.gossip, "--peer-addr", p.peer,
		"--http-addr", p.httpAdr, "--client-addr", p.client, "--zk-addr", p.zk}
	c.procs[p.name] = p
	c.start(p)
	t.Cleanup(func() { c.kill(p) })
	c.waitFor("the single node to lead", 30*time.Second, func() bool { return c.leader(p) != nil })
	if st, err := status(p.httpAdr); err != nil || st.Version != grove.Version || st.DataSizeBytes <= 0 || st.UptimeSeconds <= 0 {
		t.Fatalf("/status: version %q, data size %d, uptime %v, err %v", st.Version, st.DataSizeBytes, st.UptimeSeconds, err)
	}
	if out, errOut, code := groveCmd(t, c.bin, "--servers", p.client, "create", "/hello", "world"); code != 0 {
		t.Fatalf("create: exit %d: %s%s", code, out, errOut)
	}
	// status and members honour --output json.
	out, errOut, code := groveCmd(t, c.bin, "--output", "json", "status", "--http", p.httpAdr)
	var st server.StatusReply
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Role != "leader" || len(st.Voters) != 1 {
		t.Fatalf("status --output json: exit %d, %v: %s%s", code, err, out, errOut)
	}
	out, errOut, code = groveCmd(t, c.bin, "--output", "json", "members", "--http", p.httpAdr)
	var members []server.GossipMember
	if err := json.Unmarshal([]byte(out), &members); code != 0 || err != nil || len(members) != 1 {
		t.Fatalf("members --output json: exit %d, %v: %s%s", code, err, out, errOut)
	}
	c.kill(p)
	c.start(p)
	c.waitFor("the restarted node to lead", 30*time.Second, func() bool { return c.leader(p) != nil })
	if out, errOut, code := groveCmd(t, c.bin, "--servers", p.client, "get", "/hello"); code != 0 || strings.TrimSpace(out) != "world" {
		t.Fatalf("get after a restart: exit %d: %q %s", code, out, errOut)
	}
}
