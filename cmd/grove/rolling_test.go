package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
)

// TestRollingRestartUnderWriters restarts every node of a three-process
// cluster in turn with SIGTERM while four writers create znodes through
// one native session: no write may fail (the client's own retries
// aside), every acknowledged write is there afterwards, all three nodes
// are still voters, and the leader's stop handed leadership over instead
// of leaving the others to an election timeout.
func TestRollingRestartUnderWriters(t *testing.T) {
	c := newProcCluster(t)
	all := c.startThree("roll")
	addrs := []string{all[0].client, all[1].client, all[2].client}
	ctx := t.Context()
	s, err := client.Dial(ctx, addrs, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(context.Background()) }()

	var (
		mu     sync.Mutex
		acked  []string
		failed []error
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; wctx.Err() == nil; i++ {
				p := fmt.Sprintf("/roll-%d-%d", w, i)
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := s.Create(cctx, p, []byte("x"), grove.ModePersistent, grove.OpenACLUnsafe)
				cancel()
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Errorf("create %s: %w", p, err))
				} else {
					acked = append(acked, p)
				}
				mu.Unlock()
			}
		})
	}
	defer func() { stop(); wg.Wait() }()

	var leaderStopped *proc
	for _, p := range all {
		before := count()
		c.waitFor("writes before the restart of "+p.name, 30*time.Second, func() bool { return count() >= before+50 })
		if c.leader(all...) == p {
			leaderStopped = p
		}
		c.terminate(p)
		c.start(p)
		c.waitFor(p.name+" back and caught up", 60*time.Second, func() bool {
			lead := c.leader(all...)
			if lead == nil || lead == p {
				return lead == p
			}
			ls, err := status(lead.httpAdr)
			if err != nil {
				return false
			}
			ps, err := status(p.httpAdr)
			return err == nil && ps.LeaderID != "" && ps.AppliedIndex+1000 >= ls.CommitIndex
		})
	}
	before := count()
	c.waitFor("writes after the last restart", 30*time.Second, func() bool { return count() >= before+50 })
	stop()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(failed) > 0 {
		t.Fatalf("%d writes failed during the rolling restart, first: %v", len(failed), failed[0])
	}
	for _, p := range acked {
		if ok, _, err := s.Exists(ctx, p); err != nil || !ok {
			t.Fatalf("acknowledged %s: exists %v, %v", p, ok, err)
		}
	}
	st, err := status(c.leader(all...).httpAdr)
	if err != nil {
		t.Fatal(err)
	}
	if names := voterNames(st); len(names) != 3 {
		t.Fatalf("voters after the rolling restart: %v", names)
	}
	if leaderStopped == nil {
		t.Fatal("no restart found its node leading")
	}
	logb, err := os.ReadFile(filepath.Join(c.base, leaderStopped.name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logb), "handed leadership over") {
		t.Fatalf("%s was stopped leading but did not hand leadership over", leaderStopped.name)
	}
	t.Logf("%d writes acknowledged, none failed, through three restarts", len(acked))
}

// TestMembersTransferLeader hands leadership over with the CLI, first to
// whichever voter is most caught up (asked of a follower, which forwards
// to the leader), then to a named one.
func TestMembersTransferLeader(t *testing.T) {
	c := newProcCluster(t)
	all := c.startThree("tl")
	old := c.leader(all...)
	var follower *proc
	for _, p := range all {
		if p != old {
			follower = p
			break
		}
	}
	out, errOut, code := groveCmd(t, c.bin, "members", "--http", follower.httpAdr, "transfer-leader")
	if code != 0 || !strings.HasPrefix(out, "leader is now tl") {
		t.Fatalf("transfer-leader: exit %d, %q %q", code, out, errOut)
	}
	c.waitFor("a new leader", 30*time.Second, func() bool { l := c.leader(all...); return l != nil && l != old })
	if now := c.leader(all...); !strings.Contains(out, now.name) {
		t.Fatalf("transfer-leader said %q, %s leads", out, now.name)
	}
	out, errOut, code = groveCmd(t, c.bin, "--output", "json", "members", "--http", old.httpAdr, "transfer-leader", old.name)
	if code != 0 || !strings.Contains(out, `"name":"`+old.name+`"`) {
		t.Fatalf("transfer-leader %s: exit %d, %q %q", old.name, code, out, errOut)
	}
	c.waitFor(old.name+" leading again", 30*time.Second, func() bool { return c.leader(all...) == old })
	if _, errOut, code = groveCmd(t, c.bin, "members", "--http", old.httpAdr, "transfer-leader", "nobody"); code != 1 || !strings.Contains(errOut, "no member named") {
		t.Fatalf("transfer-leader to a stranger: exit %d, %q", code, errOut)
	}
}

// grove sessions lists open sessions with their ephemeral znodes.
func TestSessionsCommand(t *testing.T) {
	c := newProcCluster(t)
	all := c.startThree("se")
	ctx := t.Context()
	s, err := client.Dial(ctx, []string{all[1].client}, client.WithTimeout(7*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(context.Background()) }()
	for _, p := range []string{"/eph-a", "/eph-b"} {
		if _, err := s.Create(ctx, p, nil, grove.ModeEphemeral, grove.OpenACLUnsafe); err != nil {
			t.Fatal(err)
		}
	}
	id := fmt.Sprintf("0x%x", s.ID())
	out, errOut, code := groveCmd(t, c.bin, "sessions", "--http", all[2].httpAdr, "--ephemerals")
	if code != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), id+" 7s 2 /eph-a /eph-b") {
		t.Fatalf("sessions --ephemerals: exit %d, %q %q", code, out, errOut)
	}
	out, errOut, code = groveCmd(t, c.bin, "--output", "json", "sessions", "--http", all[0].httpAdr)
	if code != 0 || !strings.Contains(out, `{"id":"`+id+`","timeout_ms":7000,"ephemeral_count":2}`) {
		t.Fatalf("sessions --output json: exit %d, %q %q", code, out, errOut)
	}
}

// TestOneAddressContract: every command reaches the cluster through
// --servers (client ports) alone; the HTTP port is found from the cluster.
// An HTTP flag pointed at a client port, or servers where nothing
// listens, fail at once saying what is wrong.
func TestOneAddressContract(t *testing.T) {
	c := newProcCluster(t)
	all := c.startThree("ac")
	servers := all[0].client + "," + all[1].client
	if out, errOut, code := groveCmd(t, c.bin, "--servers", servers, "create", "/contract", "x"); code != 0 {
		t.Fatalf("create: exit %d: %s%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"status"}, {"members"}, {"sessions"}, {"--output", "json", "status"},
	} {
		out, errOut, code := groveCmd(t, c.bin, append([]string{"--servers", servers}, args...)...)
		if code != 0 || out == "" {
			t.Fatalf("grove --servers %s %q: exit %d: %q %q", servers, args, code, out, errOut)
		}
	}
	file := filepath.Join(t.TempDir(), "b.grove")
	if out, errOut, code := groveCmd(t, c.bin, "--servers", servers, "backup", "--no-progress", file); code != 0 {
		t.Fatalf("backup through --servers: exit %d: %s%s", code, out, errOut)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("backup file: %v", err)
	}
	// GROVE_SERVERS does the same.
	cmd := exec.Command(c.bin, "status")
	cmd.Env = append(os.Environ(), "GROVE_SERVERS="+all[2].client)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "node ac3") {
		t.Fatalf("status with GROVE_SERVERS: %v: %s", err, out)
	}
	// --http at a client port.
	_, errOut, code := groveCmd(t, c.bin, "status", "--http", all[0].client)
	if code != 1 || !strings.Contains(errOut, "does not speak HTTP (a client port?") {
		t.Fatalf("status --http CLIENT-PORT: exit %d: %q", code, errOut)
	}
	// Nothing listening: at once, naming the address.
	dead := freePort(t)
	start := time.Now()
	_, errOut, code = groveCmd(t, c.bin, "--servers", dead, "status")
	if code != 1 || !strings.Contains(errOut, "--servers "+dead) || !strings.Contains(errOut, "no server is listening") {
		t.Fatalf("status with nothing listening: exit %d: %q", code, errOut)
	}
	t.Logf("failed in %v", time.Since(start))
}

// grove defrag compacts the reached node's state file online; a leader
// hands leadership over first; the data stays.
func TestDefragCommand(t *testing.T) {
	c := newProcCluster(t)
	all := c.startThree("df")
	leader := c.leader(all...)
	ctx := t.Context()
	s, err := client.Dial(ctx, []string{leader.client}, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(context.Background()) }()
	data := make([]byte, 16<<10)
	var ops []grove.Op
	for i := range 1200 {
		ops = append(ops, grove.CreateOp(fmt.Sprintf("/big%04d", i), data, grove.ModePersistent, grove.OpenACLUnsafe))
		if len(ops) == 100 {
			if _, err := s.Multi(ctx, ops...); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	for i := range 1199 {
		ops = append(ops, grove.DeleteOp(fmt.Sprintf("/big%04d", i), -1))
		if len(ops) == 100 || i == 1198 {
			if _, err := s.Multi(ctx, ops...); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	out, errOut, code := groveCmd(t, c.bin, "--servers", leader.client, "defrag")
	if code != 0 || !strings.Contains(out, "handed leadership to df") || !strings.Contains(out, "state file ") {
		t.Fatalf("defrag: exit %d: %q %q", code, out, errOut)
	}
	var before, after int64
	if _, err := fmt.Sscanf(out[strings.Index(out, "state file "):], "state file %d -> %d bytes", &before, &after); err != nil || after >= before {
		t.Fatalf("defrag printed %q (%v)", out, err)
	}
	c.waitFor("a leader after the defrag", 30*time.Second, func() bool { l := c.leader(all...); return l != nil && l != leader })
	if got, _, err := s.Get(ctx, "/big1199"); err != nil || len(got) != len(data) {
		t.Fatalf("data after the defrag: %d bytes, %v", len(got), err)
	}
	c.waitFor("the replicas equal", 30*time.Second, func() bool { return c.converged(all...) })
}

// A second server on a data dir in use exits at once with one line and
// status 2, and the first goes on serving.
func TestBusyDataDirRefused(t *testing.T) {
	c := newProcCluster(t)
	all := c.startThree("bz")
	p := all[0]
	cmd := exec.Command(c.bin, "server", "--name", "intruder", "--data-dir", p.dir,
		"--gossip-addr", freePort(t), "--peer-addr", freePort(t), "--http-addr", freePort(t),
		"--client-addr", freePort(t), "--zk-addr", freePort(t), "--join", p.gossip)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("second server on a busy data dir: %v, stderr %q", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("second server on a busy data dir did not exit; stderr %q", stderr.String())
	}
	if got := stderr.String(); !strings.HasPrefix(got, "grove: ") || strings.Count(got, "\n") != 1 || !strings.Contains(got, "in use") {
		t.Fatalf("stderr %q: want one grove: line saying the data dir is in use", got)
	}
	if out, errOut, code := groveCmd(t, c.bin, "--servers", p.client, "create", "/still-serving"); code != 0 {
		t.Fatalf("the first server after the intruder: exit %d %s%s", code, out, errOut)
	}
}

// grove members leave makes the node reached (here the leader) leave for
// good: its process exits 0, the others go on with two voters, and its
// data dir will not start again.
func TestMembersLeave(t *testing.T) {
	c := newProcCluster(t)
	all := c.startThree("lv")
	leaver := c.leader(all...)
	out, errOut, code := groveCmd(t, c.bin, "--servers", leaver.client, "members", "leave")
	if code != 0 || out != leaver.name+" is leaving the cluster\n" {
		t.Fatalf("members leave: exit %d: %q %q", code, out, errOut)
	}
	select {
	case <-leaver.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit after leaving", leaver.name)
	}
	if st := leaver.cmd.ProcessState; st == nil || st.ExitCode() != 0 {
		t.Fatalf("%s exited with %v after leaving", leaver.name, st)
	}
	var rest []*proc
	for _, p := range all {
		if p != leaver {
			rest = append(rest, p)
		}
	}
	c.waitFor("two voters without the leaver", 30*time.Second, func() bool {
		l := c.leader(rest...)
		if l == nil {
			return false
		}
		st, err := status(l.httpAdr)
		return err == nil && len(voterNames(st)) == 2 && !slices.Contains(voterNames(st), leaver.name)
	})
	if out, errOut, code := groveCmd(t, c.bin, "--servers", rest[0].client, "create", "/after-leave"); code != 0 {
		t.Fatalf("write after the leave: exit %d %s%s", code, out, errOut)
	}
	cmd := exec.Command(c.bin, leaver.args...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "new data dir") {
		t.Fatalf("restart on a left data dir: %v\n%s", err, out)
	}
}
