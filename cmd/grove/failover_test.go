package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFailoverTime measures how long writes stop when the leader of a
// three-process cluster is SIGKILLed. It is a measurement, not a CI test:
// it runs only with GROVE_FAILOVER_RUNS set (the number of kills), builds
// grove without -race, starts three `grove server` processes with the
// default timing flags (50ms tick, 10-tick election timeout), and for each
// run:
//
//   - a writer PUTs through the three nodes round-robin, one write at a
//     time, each with a short client timeout (GROVE_FAILOVER_CLIENT_TIMEOUT,
//     default 1s);
//
//   - the leader is SIGKILLed;
//
//   - it records the time from the kill to the first successful write that
//     started after it, the longest gap between two successful writes, and
//     from the servers' logs when the survivors started an election and
//     when the new leader took over;
//
//   - the killed node is restarted from its data dir and the cluster
//     converges before the next run.
//
//     GROVE_FAILOVER_RUNS=5 go test -run TestFailoverTime -v -timeout 20m ./cmd/grove/
//
// Results: docs/performance-cluster.md.
func TestFailoverTime(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("GROVE_FAILOVER_RUNS"))
	if runs <= 0 {
		t.Skip("set GROVE_FAILOVER_RUNS (e.g. 5) to measure failover; not a CI test")
	}
	clientTimeout := time.Second
	if d, err := time.ParseDuration(os.Getenv("GROVE_FAILOVER_CLIENT_TIMEOUT")); err == nil && d > 0 {
		clientTimeout = d
	}
	writers := 1
	if n, err := strconv.Atoi(os.Getenv("GROVE_FAILOVER_WRITERS")); err == nil && n > 0 {
		writers = n
	}
	c := &procCluster{t: t, bin: buildGroveNoRace(t), base: t.TempDir(), procs: map[string]*proc{}}
	n1 := c.add("n1", "--bootstrap-expect", "3")
	n2 := c.add("n2", "--bootstrap-expect", "3")
	n3 := c.add("n3", "--bootstrap-expect", "3")
	all := []*proc{n1, n2, n3}
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(all...) != nil })

	client := &http.Client{Timeout: clientTimeout, Transport: testTransport{http.DefaultTransport}}
	var results []failoverResult
	for run := 1; run <= runs; run++ {
		c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(all...) != nil })
		res := failoverRun(t, c, all, client, writers, run)
		results = append(results, res)
		t.Logf("run %d: %v", run, res)
		// The killed node comes back and catches up before the next run.
		c.start(res.killed)
		c.waitFor("convergence after restart", 60*time.Second, func() bool { return c.converged(all...) })
		c.waitFor("every server to take a write", 30*time.Second, func() bool {
			for _, p := range all {
				if putWith(client, p.httpAdr, fmt.Sprintf("/failover-ready-%d-%s-%d", run, p.name, time.Now().UnixNano()), "x") != nil {
					return false
				}
			}
			return true
		})
	}

	median := func(f func(failoverResult) time.Duration) (time.Duration, []time.Duration) {
		var ds []time.Duration
		for _, r := range results {
			ds = append(ds, f(r))
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2], ds
	}
	round := func(ds []time.Duration) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Round(time.Millisecond).String())
		}
		return out
	}
	for _, m := range []struct {
		name string
		f    func(failoverResult) time.Duration
	}{
		{"kill → first survivor starts an election (log)", func(r failoverResult) time.Duration { return r.election }},
		{"kill → new leader (log)", func(r failoverResult) time.Duration { return r.elected }},
		{"kill → first successful write started after the kill", func(r failoverResult) time.Duration { return r.firstWrite }},
		{"longest gap between successful writes", func(r failoverResult) time.Duration { return r.maxGap }},
	} {
		med, each := median(m.f)
		t.Logf("%s: median %v, each %v", m.name, med.Round(time.Millisecond), round(each))
	}
	t.Logf("client timeout %v; %d writer(s), each round-robin over the 3 nodes (starting at a different one), one write at a time", clientTimeout, writers)
}

// failoverResult is one kill.
type failoverResult struct {
	killed       *proc
	newLeader    string
	election     time.Duration // kill → first "starting a new election" on a survivor
	elected      time.Duration // kill → "became leader" on the new leader
	firstWrite   time.Duration // kill → end of the first successful write started after it
	firstVia     string        // node that write went through
	firstTook    time.Duration // how long that write took
	maxGap       time.Duration // longest gap between two successful write completions
	okBefore     int           // successful writes before the kill
	failed       int           // failed writes ending between the kill and the first success
	timeouts     int           // of which client timeouts
	leaderEvents []string      // raft role changes on the survivors after the kill
}

func (r failoverResult) String() string {
	return fmt.Sprintf("killed %s; election started +%v, %s leader +%v; first write +%v (via %s, took %v); longest write gap %v; %d failed writes (%d timeouts) before it; events: %s",
		r.killed.name, r.election.Round(time.Millisecond), r.newLeader, r.elected.Round(time.Millisecond),
		r.firstWrite.Round(time.Millisecond), r.firstVia, r.firstTook.Round(time.Millisecond), r.maxGap.Round(time.Millisecond), r.failed, r.timeouts,
		strings.Join(r.leaderEvents, "; "))
}

type writeRec struct {
	via        string
	start, end time.Time
	err        error
}

func failoverRun(t *testing.T, c *procCluster, all []*proc, client *http.Client, writers, run int) failoverResult {
	t.Helper()
	leader := c.leader(all...)
	if leader == nil {
		t.Fatal("no leader")
	}
	var (
		mu   sync.Mutex
		recs []writeRec
	)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				p := all[(w+i)%len(all)]
				path := fmt.Sprintf("/failover-%d-%d-%d", run, w, i)
				start := time.Now()
				err := putWith(client, p.httpAdr, path, "x")
				mu.Lock()
				recs = append(recs, writeRec{via: p.name, start: start, end: time.Now(), err: err})
				mu.Unlock()
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	// Every server has its HTTP session and a steady stream of writes.
	okVia := func(after time.Time) map[string]int {
		mu.Lock()
		defer mu.Unlock()
		n := map[string]int{}
		for _, r := range recs {
			if r.err == nil && r.start.After(after) {
				n[r.via]++
			}
		}
		return n
	}
	c.waitFor("three writes through every server", 30*time.Second, func() bool {
		n := okVia(time.Time{})
		for _, p := range all {
			if n[p.name] < 3 {
				return false
			}
		}
		return true
	})

	killAt := time.Now()
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-leader.done
	res := failoverResult{killed: leader}
	var first time.Time
	c.waitFor("a successful write after the kill", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			if r.err == nil && r.start.After(killAt) {
				first, res.firstVia, res.firstTook = r.end, r.via, r.end.Sub(r.start)
				return true
			}
		}
		return false
	})
	c.waitFor("more writes after the failover", 30*time.Second, func() bool {
		total := 0
		for _, k := range okVia(first) {
			total += k
		}
		return total >= 20
	})
	cancel()
	wg.Wait()

	res.firstWrite = first.Sub(killAt)
	var last time.Time
	slices.SortFunc(recs, func(a, b writeRec) int { return a.end.Compare(b.end) })
	for _, r := range recs {
		switch {
		case r.err == nil && r.end.Before(killAt):
			res.okBefore++
		case r.err != nil && !r.end.Before(killAt) && !r.end.After(first):
			res.failed++
			if isTimeout(r.err) {
				res.timeouts++
			}
		}
		if r.err != nil {
			continue
		}
		if !last.IsZero() && r.end.Sub(last) > res.maxGap {
			res.maxGap = r.end.Sub(last)
		}
		if r.end.After(last) {
			last = r.end
		}
	}

	// The survivors' logs: when an election started, who won and when.
	for _, p := range all {
		if p == leader {
			continue
		}
		for _, ev := range logEvents(t, filepath.Join(c.base, p.name+".log"), killAt) {
			rel := ev.at.Sub(killAt)
			switch {
			case strings.Contains(ev.msg, "is starting a new election"):
				if res.election == 0 || rel < res.election {
					res.election = rel
				}
			case ev.msg == "became leader":
				res.elected, res.newLeader = rel, p.name
			}
			if strings.Contains(ev.msg, " became ") || strings.Contains(ev.msg, "starting a new election") {
				res.leaderEvents = append(res.leaderEvents, fmt.Sprintf("%s +%v %s", p.name, rel.Round(time.Millisecond), ev.msg))
			}
		}
	}
	slices.Sort(res.leaderEvents)
	return res
}

// isTimeout reports a write that ran out of time: the client's own
// timeout, or the server answering 504 because the write's deadline passed.
func isTimeout(err error) bool {
	var ne net.Error
	var se *statusError
	return (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &se) && se.code == http.StatusGatewayTimeout)
}

type logEvent struct {
	at  time.Time
	msg string
}

// logEvents returns the records of a server's text log written after since.
func logEvents(t *testing.T, path string, since time.Time) []logEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Logf("read log: %v", err)
		return nil
	}
	defer func() { _ = f.Close() }()
	var out []logEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ts, ok := logField(line, "time")
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(since) {
			continue
		}
		msg, _ := logField(line, "msg")
		out = append(out, logEvent{at: at, msg: msg})
	}
	return out
}

// logField extracts key=value (value possibly quoted) from a slog text line.
func logField(line, key string) (string, bool) {
	i := strings.Index(line, key+"=")
	if i < 0 || (i > 0 && line[i-1] != ' ') {
		return "", false
	}
	rest := line[i+len(key)+1:]
	if strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			s, _ := strconv.Unquote(v)
			return s, true
		}
		return "", false
	}
	if j := strings.IndexByte(rest, ' '); j >= 0 {
		rest = rest[:j]
	}
	return rest, true
}

// buildGroveNoRace returns the grove binary without -race, for
// measurements.
func buildGroveNoRace(t *testing.T) string { return buildGroveBin(t, false) }
