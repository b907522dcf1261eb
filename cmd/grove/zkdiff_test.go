package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/grovekit/grove/internal/zktest"
)

// diffScenario is one sequence of client operations, run the same way
// against real ZooKeeper 3.8 and against Grove's ZooKeeper port; out
// collects what a client sees.
type diffScenario struct {
	name string
	run  func(t *testing.T, d *diffRun)
}

// diffRun is one scenario against one server.
type diffRun struct {
	addr string
	out  []string
	// conns are the sessions the scenario opened, closed at its end.
	conns []*zk.Conn
}

// conn opens a session on the server under test.
func (d *diffRun) conn(t *testing.T) *zk.Conn {
	t.Helper()
	c, events, err := zk.Connect([]string{d.addr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	d.conns = append(d.conns, c)
	waitConnected(t, events)
	return c
}

// see records one observation.
func (d *diffRun) see(format string, args ...any) {
	d.out = append(d.out, fmt.Sprintf(format, args...))
}

// errName names an error as a client sees it ("ok" for none).
func errName(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// statOf keeps the Stat fields two servers must agree on (not zxids or
// times); an ephemeral owner is shown as the session that owns it.
func statOf(st *zk.Stat, session int64) string {
	if st == nil {
		return "<nil>"
	}
	owner := fmt.Sprintf("%#x", st.EphemeralOwner)
	if st.EphemeralOwner == session && session != 0 {
		owner = "this session"
	}
	return fmt.Sprintf("version=%d cversion=%d aversion=%d ephemeralOwner=%s dataLength=%d numChildren=%d",
		st.Version, st.Cversion, st.Aversion, owner, st.DataLength, st.NumChildren)
}

var diffScenarios = []diffScenario{
	{"four-letter words", func(t *testing.T, d *diffRun) {
		for _, w := range []string{"ruok", "xyzw", "isro", "gtmk", "crst", "srst"} {
			d.see("%s: %q", w, zktest.FourLetter(d.addr, w))
		}
		// Words whose figures differ: their shape, figures masked.
		c := d.conn(t)
		if _, _, _, err := c.GetW("/zookeeper"); err != nil {
			t.Fatal(err)
		}
		digits := regexp.MustCompile(`0x[0-9a-f]+|[0-9]+(\.[0-9]+)?`)
		for _, w := range []string{"wchc", "wchp", "dirs"} {
			d.see("%s: %q", w, digits.ReplaceAllString(zktest.FourLetter(d.addr, w), "N"))
		}
		for _, l := range strings.Split(zktest.FourLetter(d.addr, "srvr"), "\n") {
			if strings.HasPrefix(l, "Latency") {
				d.see("srvr: %s", digits.ReplaceAllString(l, "N"))
			}
		}
		// The mntr keys monitoring tools read, with ZooKeeper's names.
		mntr := map[string]bool{}
		for _, l := range strings.Split(zktest.FourLetter(d.addr, "mntr"), "\n") {
			k, _, _ := strings.Cut(l, "\t")
			mntr[k] = true
		}
		for _, k := range []string{"zk_version", "zk_server_state", "zk_znode_count", "zk_watch_count",
			"zk_ephemerals_count", "zk_approximate_data_size", "zk_open_file_descriptor_count",
			"zk_max_file_descriptor_count", "zk_outstanding_requests", "zk_num_alive_connections",
			"zk_avg_latency", "zk_min_latency", "zk_max_latency", "zk_packets_received", "zk_packets_sent", "zk_uptime"} {
			d.see("mntr has %s: %v", k, mntr[k])
		}
	}},
	{"sequential suffixes after creates, deletes and failed multis", func(t *testing.T, d *diffRun) {
		c := d.conn(t)
		open := zk.WorldACL(zk.PermAll)
		create := func(path string, flags int32) {
			name, err := c.Create(path, nil, flags, open)
			d.see("create %s: %s %s", path, name, errName(err))
		}
		create("/q", 0)
		create("/q/job-", zk.FlagSequence)
		create("/q/plain", 0)
		d.see("delete plain: %s", errName(c.Delete("/q/plain", -1)))
		create("/q/job-", zk.FlagSequence)
		_, err := c.Multi(&zk.CreateRequest{Path: "/q/in-multi", Acl: open}, &zk.CreateRequest{Path: "/missing/child", Acl: open})
		d.see("failing multi: %s", errName(err))
		create("/q/job-", zk.FlagSequence)
		create("/q/plain", 0)
		create("/q/plain", 0) // exists
		create("/q/job-", zk.FlagSequence|zk.FlagEphemeral)
		_, st, err := c.Exists("/q")
		d.see("/q: %s %s", errName(err), statOf(st, 0))
	}},
	{"null and empty data", func(t *testing.T, d *diffRun) {
		c := d.conn(t)
		for _, n := range []struct {
			path string
			data []byte
		}{{"/d-null", nil}, {"/d-empty", []byte{}}, {"/d-x", []byte("x")}} {
			_, err := c.Create(n.path, n.data, 0, zk.WorldACL(zk.PermAll))
			data, st, gerr := c.Get(n.path)
			d.see("%s: create %s, get %q nil=%v %s %s", n.path, errName(err), data, data == nil, errName(gerr), statOf(st, 0))
		}
		_, err := c.Set("/d-x", nil, -1)
		data, _, gerr := c.Get("/d-x")
		d.see("set nil: %s, get %q nil=%v %s", errName(err), data, data == nil, errName(gerr))
	}},
	{"ephemeralOwner of containers and TTL nodes", func(t *testing.T, d *diffRun) {
		c := d.conn(t)
		_, err := c.CreateContainer("/box", nil, zk.FlagContainer, zk.WorldACL(zk.PermAll))
		_, st, serr := c.Exists("/box")
		d.see("container: %s %s %s", errName(err), errName(serr), statOf(st, c.SessionID()))
		_, err = c.CreateTTL("/ttl", nil, zk.FlagTTL, zk.WorldACL(zk.PermAll), time.Hour)
		_, st, serr = c.Exists("/ttl")
		d.see("ttl: %s %s %s", errName(err), errName(serr), statOf(st, c.SessionID()))
		_, err = c.Create("/eph", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		_, st, serr = c.Exists("/eph")
		d.see("ephemeral: %s %s %s", errName(err), errName(serr), statOf(st, c.SessionID()))
	}},
	{"digest credentials without a colon", func(t *testing.T, d *diffRun) {
		c := d.conn(t)
		d.see("addAuth digest blah: %s", errName(c.AddAuth("digest", []byte("blah"))))
		_, err := c.Create("/after-auth", nil, 0, zk.WorldACL(zk.PermAll))
		d.see("create after: %s", errName(err))
	}},
	{"getACL without READ or ADMIN", func(t *testing.T, d *diffRun) {
		owner := d.conn(t)
		d.see("auth: %s", errName(owner.AddAuth("digest", []byte("alice:pw"))))
		_, err := owner.Create("/private", nil, 0, zk.DigestACL(zk.PermAll, "alice", "pw"))
		d.see("create: %s", errName(err))
		stranger := d.conn(t)
		acl, st, err := stranger.GetACL("/private")
		d.see("stranger getACL: %s %d entries %s", errName(err), len(acl), statOf(st, 0))
		acl, _, err = owner.GetACL("/private")
		d.see("owner getACL: %s %v", errName(err), acl)
	}},
	{"the /zookeeper tree", func(t *testing.T, d *diffRun) {
		c := d.conn(t)
		data, st, err := c.Get("/zookeeper/config")
		d.see("get /zookeeper/config: %q %s %s", data, errName(err), statOf(st, 0))
		kids, st, err := c.Children("/zookeeper")
		// Not the whole Stat: ZooKeeper's /zookeeper has cversion -2, an
		// artifact of how it builds the node.
		d.see("children of /zookeeper: %v %s numChildren=%d", kids, errName(err), st.NumChildren)
		_, st, err = c.Get("/zookeeper/quota")
		d.see("get /zookeeper/quota: %s %s", errName(err), statOf(st, 0))
		_, err = c.Create("/zookeeper/config/x", nil, 0, zk.WorldACL(zk.PermAll))
		d.see("create under /zookeeper/config: %s", errName(err))
		_, err = c.Set("/zookeeper/config", []byte("x"), -1)
		d.see("set /zookeeper/config: %s", errName(err))
		d.see("delete /zookeeper/config: %s", errName(c.Delete("/zookeeper/config", -1)))
		acl, _, err := c.GetACL("/zookeeper/config")
		d.see("getACL /zookeeper/config: %v %s", acl, errName(err))
	}},
}

// TestDifferentialAgainstZooKeeper runs every scenario against a real
// ZooKeeper 3.8 and against a Grove server's ZooKeeper port (each scenario
// on fresh servers) and requires the same observations.
func TestDifferentialAgainstZooKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper and Grove; run without -short")
	}
	for _, sc := range diffScenarios {
		t.Run(sc.name, func(t *testing.T) {
			zkAddr := zktest.Start(t)
			c := newProcCluster(t)
			g := c.add("z1", "--bootstrap-expect", "1")
			c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(g) != nil })
			want, got := runScenario(t, sc, zkAddr), runScenario(t, sc, g.zk)
			if strings.Join(want, "\n") != strings.Join(got, "\n") {
				t.Errorf("Grove differs from ZooKeeper 3.8:\n%s", lineDiff(want, got))
			} else {
				t.Logf("ZooKeeper 3.8 and Grove agree:\n%s", strings.Join(want, "\n"))
			}
		})
	}
}

func runScenario(t *testing.T, sc diffScenario, addr string) []string {
	t.Helper()
	d := &diffRun{addr: addr}
	defer func() {
		for _, c := range d.conns {
			c.Close()
		}
	}()
	sc.run(t, d)
	return d.out
}

// lineDiff shows two transcripts side by side where they differ.
func lineDiff(want, got []string) string {
	var b strings.Builder
	for i := range max(len(want), len(got)) {
		w, g := "<none>", "<none>"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		mark := "  "
		if w != g {
			mark = "! "
		}
		fmt.Fprintf(&b, "%szookeeper: %s\n%s    grove: %s\n", mark, w, mark, g)
	}
	return b.String()
}

// TestZkCliSideBySide runs one zkCli.sh (ZooKeeper 3.8's Java client)
// script against a standalone ZooKeeper 3.8 and against a grove server and
// requires the same output, zxids, times and ports masked: addWatch (its
// 4-byte reply once broke the Java client), config, getAcl, whoami, auth
// and a multi-free ACL change. The notifications, which zkCli prints
// whenever they arrive, are compared as a set.
func TestZkCliSideBySide(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper and Grove; run without -short")
	}
	zkcli := requireTool(t, []string{"/usr/share/zookeeper/bin/zkCli.sh", "zkCli.sh"})
	zkAddr := zktest.Start(t)
	c := newProcCluster(t)
	g := c.add("z1", "--bootstrap-expect", "1")
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(g) != nil })
	script := "addWatch -m PERSISTENT_RECURSIVE /zc\ncreate /zc x\ncreate /zc/a y\nset /zc/a z\n" +
		"config\ngetAcl /zc\nwhoami\naddauth digest alice:pw\nwhoami\nsetAcl /zc auth::cdrwa\ngetAcl /zc\n" +
		"get /zc\nstat /zc/a\ndelete /zc/a\nls /zc\nsync /zc\nquit\n"
	run := func(addr string) (out string, events []string) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, zkcli, "-server", addr)
		cmd.WaitDelay = 5 * time.Second
		cmd.Stdin = strings.NewReader(script)
		raw, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("zkCli.sh against %s: %v\n%s", addr, err, raw)
		}
		mask := regexp.MustCompile(`0x[0-9a-f]+|[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \w+ \d{4}|127\.0\.0\.1:\d+`)
		var lines []string
		for _, l := range strings.Split(string(raw), "\n") {
			l = strings.TrimSpace(l)
			switch {
			case l == "" || strings.HasPrefix(l, "SLF4J") || strings.Contains(l, " INFO ") || strings.Contains(l, " WARN ") ||
				strings.HasPrefix(l, "WATCHER::") || strings.HasPrefix(l, "[zk:") || strings.HasPrefix(l, "Connecting to") ||
				strings.HasPrefix(l, "Welcome to ZooKeeper") || strings.HasPrefix(l, "JLine support"):
			case strings.HasPrefix(l, "WatchedEvent"):
				events = append(events, l)
			default:
				lines = append(lines, mask.ReplaceAllString(l, "<masked>"))
			}
		}
		slices.Sort(events)
		return strings.Join(lines, "\n"), events
	}
	wantOut, wantEvents := run(zkAddr)
	gotOut, gotEvents := run(g.zk)
	if wantOut != gotOut {
		t.Errorf("zkCli.sh output differs:\n%s", lineDiff(strings.Split(wantOut, "\n"), strings.Split(gotOut, "\n")))
	}
	if !slices.Equal(wantEvents, gotEvents) {
		t.Errorf("zkCli.sh notifications differ:\nzookeeper: %q\n    grove: %q", wantEvents, gotEvents)
	}
	if len(wantEvents) == 0 {
		t.Error("ZooKeeper sent zkCli no notification: the script no longer exercises addWatch")
	}
	t.Logf("zkCli.sh output (both):\n%s\nnotifications: %q", gotOut, gotEvents)
}

// TestKazooSideBySide runs testdata/kazoo_diff.py (kazoo, Debian's
// python3-kazoo) against a standalone ZooKeeper 3.8 and against a grove
// server and requires the same observations: null and empty data, invalid
// paths on reads and writes, a create2's Stat, digest credentials without
// a colon, a transaction.
func TestKazooSideBySide(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper and Grove; run without -short")
	}
	python := requireTool(t, []string{"/usr/bin/python3", "python3"}, "-c", "import kazoo")
	zkAddr := zktest.Start(t)
	c := newProcCluster(t)
	g := c.add("z1", "--bootstrap-expect", "1")
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(g) != nil })
	run := func(addr string) []string {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, python, filepath.Join("testdata", "kazoo_diff.py"), addr).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("kazoo_diff.py against %s: %v\n%s\n%s", addr, err, out, stderr)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	want, got := run(zkAddr), run(g.zk)
	if !slices.Equal(want, got) {
		t.Fatalf("kazoo sees Grove differ from ZooKeeper 3.8:\n%s", lineDiff(want, got))
	}
	t.Logf("kazoo sees the same on both:\n%s", strings.Join(got, "\n"))
}
