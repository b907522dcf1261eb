package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// requireTool finds an external program for a compatibility test. Without
// it the test skips, unless GROVE_REQUIRE_COMPAT=1 (CI installs the tools
// and sets it), when a missing tool fails the test.
func requireTool(t *testing.T, candidates []string, check ...string) string {
	t.Helper()
	for _, c := range candidates {
		path, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if len(check) > 0 {
			if out, err := exec.Command(path, check...).CombinedOutput(); err != nil {
				t.Logf("%s %v: %v: %s", path, check, err, out)
				continue
			}
		}
		return path
	}
	if os.Getenv("GROVE_REQUIRE_COMPAT") == "1" {
		t.Fatalf("none of %v is usable (GROVE_REQUIRE_COMPAT=1)", candidates)
	}
	t.Skipf("none of %v is usable; CI installs them (see .ci/run)", candidates)
	return ""
}

// zkCluster starts three grove processes and returns them with their
// ZooKeeper addresses.
func zkProcCluster(t *testing.T) (*procCluster, []*proc, []string) {
	c := newProcCluster(t)
	all := []*proc{c.add("n1", "--bootstrap-expect", "3"), c.add("n2", "--bootstrap-expect", "3"), c.add("n3", "--bootstrap-expect", "3")}
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(all...) != nil })
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	return c, all, []string{all[0].zk, all[1].zk, all[2].zk}
}

// TestKazooAgainstCluster runs kazoo (Debian's python3-kazoo) against a
// three-process cluster: the source document's example, ephemerals, the
// Lock, Election, Queue, LockingQueue, Counter and Barrier recipes, data
// and children watches and transactions (testdata/kazoo_compat.py).
func TestKazooAgainstCluster(t *testing.T) {
	python := requireTool(t, []string{"/usr/bin/python3", "python3"}, "-c", "import kazoo")
	_, _, zkAddrs := zkProcCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "testdata/kazoo_compat.py", strings.Join(zkAddrs, ",")).CombinedOutput()
	t.Logf("kazoo:\n%s", out)
	if err != nil || !bytes.HasSuffix(bytes.TrimSpace(out), []byte("OK")) {
		t.Fatalf("kazoo script failed: %v", err)
	}
}

// TestZkCliAgainstCluster drives Debian's zkCli.sh (ZooKeeper 3.8) through
// create, get, set, ls, stat, delete and deleteall.
func TestZkCliAgainstCluster(t *testing.T) {
	zkcli := requireTool(t, []string{"/usr/share/zookeeper/bin/zkCli.sh", "zkCli.sh"})
	_, _, zkAddrs := zkProcCluster(t)
	script := "create /zc x\nget /zc\nset /zc y\nget /zc\nls /zc\nstat /zc\ncreate /zc/a\ncreate /zc/a/b\n" +
		"delete /zc/a/b\nls /zc/a\ndeleteall /zc\nls /\nquit\n"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, zkcli, "-server", zkAddrs[1])
	cmd.Stdin = strings.NewReader(script)
	raw, err := cmd.CombinedOutput()
	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(l, "SLF4J") && !strings.Contains(l, " INFO ") && strings.TrimSpace(l) != "" {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	out := strings.Join(lines, "\n")
	t.Logf("zkCli.sh:\n%s", out)
	if err != nil {
		t.Fatalf("zkCli.sh: %v", err)
	}
	for _, want := range []string{"Created /zc\nx\ny\n[]\ncZxid = 0x", "dataVersion = 1", "numChildren = 0", "Created /zc/a\nCreated /zc/a/b\n[]\n["} {
		if !strings.Contains(out, want) {
			t.Fatalf("zkCli.sh output lacks %q", want)
		}
	}
	last := lines[len(lines)-1]
	for _, l := range lines {
		if strings.HasPrefix(l, "[") && strings.Contains(l, "zookeeper") {
			last = l // the final ls /
		}
	}
	if strings.Contains(last, "zc") {
		t.Fatalf("deleteall left /zc: %s", last)
	}
}

// TestGoZookeeperRidesThroughSIGKILL keeps a go-zookeeper session and its
// watches across a SIGKILL of the grove process it is connected to.
func TestGoZookeeperRidesThroughSIGKILL(t *testing.T) {
	c, all, zkAddrs := zkProcCluster(t)
	conn, events, err := zk.Connect(zkAddrs, 6*time.Second, zk.WithLogger(quietZK{}), zk.WithDialer(net.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitZK(t, events, zk.StateHasSession)
	acl := zk.WorldACL(zk.PermAll)
	if _, err := conn.Create("/kill", []byte("0"), 0, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create("/kill/eph", nil, zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	_, _, dataW, err := conn.GetW("/kill")
	if err != nil {
		t.Fatal(err)
	}
	var victim *proc
	for i, a := range zkAddrs {
		if a == conn.Server() {
			victim = all[i]
		}
	}
	if victim == nil {
		t.Fatalf("connected to %q, not one of %v", conn.Server(), zkAddrs)
	}
	c.kill(victim)
	var survivor string
	for i, p := range all {
		if p != victim {
			survivor = zkAddrs[i]
		}
	}
	writer, wev, err := zk.Connect([]string{survivor}, 6*time.Second, zk.WithLogger(quietZK{}), zk.WithDialer(net.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	waitZK(t, wev, zk.StateHasSession)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := writer.Set("/kill", []byte("1"), -1); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("write after the kill: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case ev := <-dataW:
		if ev.Type != zk.EventNodeDataChanged {
			t.Fatalf("watch: %+v", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watch set before the kill never fired")
	}
	if ok, st, err := writer.Exists("/kill/eph"); err != nil || !ok || st.EphemeralOwner != conn.SessionID() {
		t.Fatalf("the session's ephemeral after the kill: %v %+v %v", ok, st, err)
	}
}

type quietZK struct{}

func (quietZK) Printf(string, ...any) {}

func waitZK(t *testing.T, events <-chan zk.Event, want zk.State) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Type == zk.EventSession && ev.State == want {
				return
			}
		case <-deadline:
			t.Fatalf("no session state %v", want)
		}
	}
}

// TestZkCliRecursiveWatchHidesProtectedNodes is CVE-2024-23944's scenario
// across processes: zkCli.sh (no credentials) holds a persistent recursive
// watch on /, while another client creates nodes only digest user alice
// may read, under a node anyone may create in, and one public node. zkCli
// prints the public node's event and never a protected name.
func TestZkCliRecursiveWatchHidesProtectedNodes(t *testing.T) {
	zkcli := requireTool(t, []string{"/usr/share/zookeeper/bin/zkCli.sh", "zkCli.sh"})
	c, _, zkAddrs := zkProcCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, zkcli, "-server", zkAddrs[0])
	cmd.WaitDelay = 5 * time.Second // zkCli.sh's java may outlive a killed shell
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer // zkCli buffers its output until it exits
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "addWatch -m PERSISTENT_RECURSIVE /\ncreate /watch-ready\n"); err != nil {
		t.Fatal(err)
	}
	alice, events, err := zk.Connect([]string{zkAddrs[1]}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	waitConnected(t, events)
	// zkCli runs its lines in order: once /watch-ready exists its watch is set.
	c.waitFor("zkCli's watch to be set", time.Minute, func() bool {
		_, _ = alice.Sync("/")
		ok, _, _ := alice.Exists("/watch-ready")
		return ok
	})
	if err := alice.AddAuth("digest", []byte("alice:pw")); err != nil {
		t.Fatal(err)
	}
	private := zk.DigestACL(zk.PermAll, "alice", "pw")
	dropBox := append(zk.DigestACL(zk.PermAll, "alice", "pw"), zk.ACL{Perms: zk.PermCreate, Scheme: "world", ID: "anyone"})
	for _, n := range []struct {
		path string
		acl  []zk.ACL
	}{{"/vault", dropBox}, {"/vault/acme-payroll", private}, {"/vault/globex-keys", private}, {"/public-after", zk.WorldACL(zk.PermAll)}} {
		if _, err := alice.Create(n.path, nil, 0, n.acl); err != nil {
			t.Fatalf("create %s: %v", n.path, err)
		}
	}
	// sync brings zkCli's server up to date: its answer follows every event
	// of the writes above.
	if _, err := io.WriteString(stdin, "sync /\nget /public-after\nquit\n"); err != nil {
		t.Fatal(err)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("zkCli.sh: %v\n%s", err, out.String())
	}
	s := out.String()
	if !strings.Contains(s, "path:/public-after") {
		t.Fatalf("zkCli missed the public node's event:\n%s", s)
	}
	if strings.Contains(s, "acme-payroll") || strings.Contains(s, "globex-keys") {
		t.Fatalf("a protected name reached the watcher:\n%s", s)
	}
}

// curatorJars are Debian's Apache Curator 5.4 (libcurator-framework-java,
// libcurator-recipes-java) and what it needs; zookeeper.jar's manifest
// names the rest of the ZooKeeper client.
var curatorJars = []string{"/usr/share/java/curator-framework.jar", "/usr/share/java/curator-recipes.jar",
	"/usr/share/java/curator-client.jar", "/usr/share/java/guava.jar", "/usr/share/java/zookeeper.jar"}

// TestCuratorAgainstCluster compiles testdata/CuratorSmoke.java with javac
// and runs it against a three-process cluster: InterProcessMutex across
// three clients (never two holders), LeaderLatch failover, a CuratorCache
// seeing a create, an update and a delete, a persistent recursive watch,
// and a transaction creating a container and a TTL node.
func TestCuratorAgainstCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; run without -short")
	}
	javac := requireTool(t, []string{"javac"}, "-version")
	java := requireTool(t, []string{"java"}, "-version")
	for _, j := range curatorJars {
		if _, err := os.Stat(j); err != nil {
			if os.Getenv("GROVE_REQUIRE_COMPAT") == "1" {
				t.Fatalf("Curator is not installed: %v", err)
			}
			t.Skipf("Curator is not installed (%v); CI installs it", err)
		}
	}
	classes := t.TempDir()
	cp := strings.Join(curatorJars, ":")
	if out, err := exec.Command(javac, "-d", classes, "-cp", cp, filepath.Join("testdata", "CuratorSmoke.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	_, _, zkAddrs := zkProcCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, "-cp", classes+":"+cp, "CuratorSmoke", strings.Join(zkAddrs, ","))
	cmd.WaitDelay = 5 * time.Second
	raw, err := cmd.CombinedOutput()
	var steps []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "ok ") || l == "all ok" {
			steps = append(steps, l)
		}
	}
	t.Logf("Curator: %q", steps)
	if err != nil || !slices.Contains(steps, "all ok") {
		t.Fatalf("Curator smoke test failed: %v\n%s", err, raw)
	}
}
