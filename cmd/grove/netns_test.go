//go:build linux

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestPartitionAcrossNamespaces runs three grove servers in three network
// namespaces joined by a bridge, cuts one node off by taking its bridge
// port down, and checks that only the majority commits, that the cut-off
// node acknowledges nothing, and that after healing every acknowledged
// write is on every node and the nodes agree on everything else.
func TestPartitionAcrossNamespaces(t *testing.T) {
	ipBin := requireNetns(t)
	sweepStaleNetns(t, ipBin)
	routes := useNetnsHTTP(t)
	bin := buildGrove(t)
	octet := 1 + rand.IntN(250)
	t.Run("isolate-follower", func(t *testing.T) {
		runPartition(t, ipBin, bin, routes, "f", octet, false)
	})
	t.Run("isolate-leader", func(t *testing.T) {
		runPartition(t, ipBin, bin, routes, "l", octet+1, true)
	})
}

// attempt is one write of the background writers.
type attempt struct {
	path, via  string
	start, end time.Time
	ok         bool
}

func runPartition(t *testing.T, ipBin, bin string, routes *netnsHTTP, tag string, octet int, isolateLeader bool) {
	t0 := time.Now()
	logf := func(format string, args ...any) {
		t.Helper()
		t.Logf("[%6.2fs] %s", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
	}
	lab := newNetnsLab(t, ipBin, tag, octet, 3)

	// The processes are `ip netns exec NS grove server ...`; ip execs grove
	// in place, so the pid procCluster kills is grove's.
	c := &procCluster{t: t, bin: ipBin, base: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	secrets := writeSecrets(t)
	var all []*proc
	for _, nd := range lab.nodes {
		all = append(all, &proc{gossip: nd.ip + ":7946", peer: nd.ip + ":2380", httpAdr: nd.ip + ":8080"})
	}
	for i, nd := range lab.nodes {
		p := all[i]
		p.name = fmt.Sprintf("n%d", i+1)
		p.dir = filepath.Join(c.base, p.name)
		p.args = []string{"netns", "exec", nd.ns, bin, "server", "--name", p.name, "--data-dir", p.dir,
			"--gossip-addr", p.gossip, "--peer-addr", p.peer, "--http-addr", p.httpAdr,
			"--join", all[0].gossip + "," + all[1].gossip + "," + all[2].gossip,
			"--bootstrap-expect", "3", "--log-level", "info",
			// Not loopback: peers, gossip and HTTP need their secrets.
			"--cluster-key-file", secrets.key, "--token-file", secrets.token}
		routes.add(p.httpAdr, nd.ns)
		c.procs[p.name] = p
		c.start(p)
		t.Cleanup(func() { c.kill(p) })
	}
	logf("started n1..n3 in namespaces %s, %s, %s on %s.0/24 (logs in %s)", lab.nodes[0].ns, lab.nodes[1].ns, lab.nodes[2].ns, lab.subnet, c.base)

	// agreedLeader returns the leader if every node of among reports it as
	// leader, with the leader's term.
	agreedLeader := func(among ...*proc) (*proc, uint64) {
		l := c.leader(among...)
		if l == nil {
			return nil, 0
		}
		lst, err := status(l.httpAdr)
		if err != nil || lst.Role != "leader" {
			return nil, 0
		}
		for _, p := range among {
			st, err := status(p.httpAdr)
			if err != nil || st.Leader != l.name || st.Term != lst.Term {
				return nil, 0
			}
		}
		return l, lst.Term
	}
	var leader *proc
	var term uint64
	d := waitUntil(t, "a leader all three agree on", 45*time.Second, func() bool {
		leader, term = agreedLeader(all...)
		return leader != nil
	})
	logf("leader %s (term %d) after %v", leader.name, term, d.Round(time.Millisecond))

	acks := &ackLog{}
	for i := range 20 {
		path := fmt.Sprintf("/pre-%02d", i)
		if err := put(leader.httpAdr, path, path); err != nil {
			t.Fatalf("write %s through leader %s: %v", path, leader.name, err)
		}
		acks.add(path)
	}
	logf("20 writes acknowledged by leader %s", leader.name)

	// Pick the node to cut off.
	var isolated *proc
	var majority []*proc
	for _, p := range all {
		if isolated == nil && (p == leader) == isolateLeader {
			isolated = p
		} else {
			majority = append(majority, p)
		}
	}
	isoIdx := 0
	for i, p := range all {
		if p == isolated {
			isoIdx = i
		}
	}

	// Background writers, one per node, run across the partition and the
	// heal. Their acknowledged writes must survive; a write through the
	// cut-off node that starts after the cut and is acknowledged before
	// the heal is a write acknowledged without a quorum.
	var (
		attemptsMu sync.Mutex
		attempts   []attempt
	)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	stopWriters := func() { cancel(); wg.Wait() }
	t.Cleanup(stopWriters)
	for _, p := range all {
		wg.Go(func() {
			tick := time.NewTicker(40 * time.Millisecond) // pacing, not ordering
			defer tick.Stop()
			for i := 0; ctx.Err() == nil; i++ {
				a := attempt{path: fmt.Sprintf("/bg-%s-%04d", p.name, i), via: p.name, start: time.Now()}
				a.ok = put(p.httpAdr, a.path, a.path) == nil
				a.end = time.Now()
				attemptsMu.Lock()
				attempts = append(attempts, a)
				attemptsMu.Unlock()
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		})
	}
	waitUntil(t, "background writes through every node", 30*time.Second, func() bool {
		attemptsMu.Lock()
		defer attemptsMu.Unlock()
		okVia := map[string]int{}
		for _, a := range attempts {
			if a.ok {
				okVia[a.via]++
			}
		}
		return okVia["n1"] >= 3 && okVia["n2"] >= 3 && okVia["n3"] >= 3
	})

	// The partition.
	role := "follower"
	if isolated == leader {
		role = "leader"
	}
	lab.setLink(isoIdx, false)
	downAt := time.Now()
	logf("partition: %s (the %s) cut off; majority %s+%s", isolated.name, role, majority[0].name, majority[1].name)

	var newLeader *proc
	var newTerm uint64
	d = waitUntil(t, "a leader on the majority side", 30*time.Second, func() bool {
		newLeader, newTerm = agreedLeader(majority...)
		return newLeader != nil
	})
	if newLeader == leader {
		logf("majority kept leader %s (term %d); confirmed %v after the cut", newLeader.name, newTerm, d.Round(time.Millisecond))
	} else {
		logf("majority elected %s (term %d) %v after the cut", newLeader.name, newTerm, d.Round(time.Millisecond))
	}

	var minoritySaw string
	waitUntil(t, isolated.name+" to lose its leader", 30*time.Second, func() bool {
		st, err := status(isolated.httpAdr)
		if err != nil || st.Role == "leader" {
			return false
		}
		minoritySaw = fmt.Sprintf("role %s, leader %q, term %d", st.Role, st.Leader, st.Term)
		return st.Leader == "" || st.Leader != newLeader.name || st.Term < newTerm
	})
	logf("%s has no current leader %v after the cut (%s)", isolated.name, time.Since(downAt).Round(time.Millisecond), minoritySaw)

	// A write through the cut-off node must not be acknowledged.
	unknown := []string{}
	probe := "/minority-probe"
	probeStart := time.Now()
	err := put(isolated.httpAdr, probe, probe)
	if err == nil {
		t.Errorf("%s acknowledged %s while cut off from the quorum", isolated.name, probe)
	} else {
		logf("write through %s failed after %v: %v", isolated.name, time.Since(probeStart).Round(time.Millisecond), err)
	}
	unknown = append(unknown, probe)

	// The majority takes writes through both of its nodes.
	majAcks := 0
	majStart := time.Now()
	for k := 0; majAcks < 20; k++ {
		if time.Since(majStart) > 30*time.Second {
			t.Fatalf("the majority acknowledged only %d of %d writes in 30s", majAcks, k)
		}
		p := majority[k%2]
		path := fmt.Sprintf("/maj-%03d", k)
		if err := put(p.httpAdr, path, path); err != nil {
			logf("majority write %s through %s: %v", path, p.name, err)
			unknown = append(unknown, path)
			continue
		}
		acks.add(path)
		majAcks++
	}
	logf("majority acknowledged 20 writes in %v", time.Since(majStart).Round(time.Millisecond))
	for _, p := range majority {
		found, _, err := lookup(p.httpAdr, probe)
		if err != nil {
			t.Fatalf("linearizable read of %s on %s: %v", probe, p.name, err)
		}
		if found {
			t.Errorf("%s, written through the cut-off %s, is on majority node %s", probe, isolated.name, p.name)
		}
	}

	// Heal.
	upAt := time.Now()
	lab.setLink(isoIdx, true)
	logf("heal: %s's link up after a %v partition", isolated.name, upAt.Sub(downAt).Round(time.Millisecond))
	var cur *proc
	d = waitUntil(t, isolated.name+" to follow the majority's leader", 30*time.Second, func() bool {
		cur, _ = agreedLeader(all...)
		return cur != nil
	})
	logf("%s follows leader %s %v after the heal", isolated.name, cur.name, d.Round(time.Millisecond))
	stopWriters()
	d = waitUntil(t, "digest and applied index equal on all three", 30*time.Second, func() bool { return c.converged(all...) })
	dg, _ := digest(all[0].httpAdr)
	logf("converged %v after the writers stopped (%s)", d.Round(time.Millisecond), dg)

	// No write through the cut-off node was acknowledged while it could
	// not reach a quorum.
	bgAcked := 0
	bgByPath := map[string]attempt{}
	for _, a := range attempts {
		bgByPath[a.path] = a
		switch {
		case a.ok && a.via == isolated.name && a.start.After(downAt) && a.end.Before(upAt):
			t.Errorf("%s acknowledged %s during the partition (sent %v after the cut, answered %v before the heal)",
				a.via, a.path, a.start.Sub(downAt).Round(time.Millisecond), upAt.Sub(a.end).Round(time.Millisecond))
			acks.add(a.path)
		case a.ok:
			acks.add(a.path)
			bgAcked++
		default:
			unknown = append(unknown, a.path)
		}
	}

	// Every acknowledged write is on every node, with its data.
	paths := acks.all()
	for _, p := range all {
		for _, path := range paths {
			found, data, err := lookup(p.httpAdr, path)
			switch {
			case err != nil:
				t.Fatalf("linearizable read of %s on %s: %v", path, p.name, err)
			case !found:
				t.Errorf("%s lost acknowledged write %s", p.name, path)
			case data != path:
				t.Errorf("%s has %q at acknowledged %s", p.name, data, path)
			}
		}
	}
	// Writes of unknown outcome are on all nodes or on none.
	committed := 0
	for _, path := range unknown {
		var on []string
		for _, p := range all {
			found, _, err := lookup(p.httpAdr, path)
			if err != nil {
				t.Fatalf("linearizable read of %s on %s: %v", path, p.name, err)
			}
			if found {
				on = append(on, p.name)
			}
		}
		switch a, bg := bgByPath[path]; {
		case len(on) == 0:
		case len(on) != len(all):
			t.Errorf("unacknowledged write %s is on %v only", path, on)
		case bg:
			committed++
			logf("unacknowledged %s (through %s, sent %v after the cut, failed %v after it) was committed",
				path, a.via, a.start.Sub(downAt).Round(time.Millisecond), a.end.Sub(downAt).Round(time.Millisecond))
		default:
			committed++
			logf("unacknowledged %s was committed", path)
		}
	}
	logf("%d acknowledged writes (%d from background writers) on all three; %d unacknowledged attempts: %d committed everywhere, the rest nowhere",
		len(paths), bgAcked, len(unknown), committed)
}
