// Package zktest starts a real ZooKeeper 3.8 server (Debian's zookeeper
// package) for tests that compare Grove's ZooKeeper port with ZooKeeper
// itself. ZooKeeper behaviour is defined by what it does, not by its docs.
package zktest

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grovekit/grove/internal/testutil"
)

// Jar is the ZooKeeper server of Debian's zookeeper package; its manifest's
// Class-Path names the jars it needs.
const Jar = "/usr/share/java/zookeeper.jar"

// logJars bind ZooKeeper's slf4j logging to log4j 1.2 (both come with the
// Debian package).
var logJars = []string{"/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar"}

const log4j = "log4j.rootLogger=WARN, CONSOLE\n" +
	"log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n" +
	"log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n" +
	"log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] %m%n\n"

// Start runs a standalone ZooKeeper 3.8 on a free loopback port and
// returns its client address; see StartEnsemble.
func Start(t testing.TB) string {
	t.Helper()
	return StartEnsemble(t, 1)[0]
}

// StartEnsemble runs n ZooKeeper 3.8 servers on free loopback ports (one
// standalone server for n = 1, else one ensemble) with every four-letter
// word enabled, extended types (TTL nodes) on, sessions of up to a minute,
// and containers not reaped within an hour (so that reaping never races a
// comparison); it returns their client addresses once every server
// answers, and kills them when the test ends. Without Java or the jar the
// test is skipped, unless GROVE_REQUIRE_COMPAT=1 (CI installs them), when
// it fails.
func StartEnsemble(t testing.TB, n int) []string {
	t.Helper()
	java, err := exec.LookPath("java")
	if _, serr := os.Stat(Jar); err != nil || serr != nil {
		if os.Getenv("GROVE_REQUIRE_COMPAT") == "1" {
			t.Fatalf("ZooKeeper is not installed (java: %v, %s: %v)", err, Jar, serr)
		}
		t.Skipf("ZooKeeper is not installed; CI installs it (see .ci/run)")
	}
	addrs := make([]string, n)
	var servers strings.Builder
	for i := range n {
		addrs[i] = testutil.FreeAddr(t)
		if n > 1 {
			fmt.Fprintf(&servers, "server.%d=%s:%s\n", i+1, testutil.FreeAddr(t), port(testutil.FreeAddr(t)))
		}
	}
	for i := range n {
		dir := t.TempDir()
		data := filepath.Join(dir, "data")
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf("tickTime=1000\ninitLimit=30\nsyncLimit=15\nforceSync=no\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\n"+
			"4lw.commands.whitelist=*\nadmin.enableServer=false\nmaxClientCnxns=0\nmaxSessionTimeout=60000\n%s",
			data, port(addrs[i]), servers.String())
		files := map[string]string{"zoo.cfg": cfg, "log4j.properties": log4j, "data/myid": fmt.Sprint(i + 1)}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		launch(t, java, dir)
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, addr := range addrs {
		for FourLetter(addr, "ruok") != "imok" || !serving(addr) {
			if time.Now().After(deadline) {
				t.Fatalf("ZooKeeper at %s did not start; its log is in the test's temp dir", addr)
			}
			time.Sleep(50 * time.Millisecond) // polling a process we do not control
		}
	}
	return addrs
}

// launch starts the server configured in dir, logging to its
// zookeeper.log; the process is killed when the test ends.
func launch(t testing.TB, java, dir string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		t.Fatal(err)
	}
	cp := strings.Join(append([]string{dir, Jar}, logJars...), ":")
	cmd := exec.Command(java, "-Xmx256m", "-Dzookeeper.extendedTypesEnabled=true",
		"-Dznode.container.checkIntervalMs=3600000", "-Dzookeeper.digest.enabled=false", "-cp", cp,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(dir, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 8<<10 {
				b = b[len(b)-8<<10:]
			}
			t.Logf("the end of ZooKeeper's log (%s):\n%s", dir, b)
		}
	})
}

// Leader returns the address of the ensemble's leader among addrs (a
// standalone server counts as one), or "" if none says it leads.
func Leader(addrs []string) string {
	for _, a := range addrs {
		out := FourLetter(a, "srvr")
		if strings.Contains(out, "Mode: leader") || strings.Contains(out, "Mode: standalone") {
			return a
		}
	}
	return ""
}

// serving reports whether the server at addr has joined a working
// ensemble (a standalone server always has): srvr answers with a Mode
// only then.
func serving(addr string) bool {
	return strings.Contains(FourLetter(addr, "srvr"), "Mode: ")
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// FourLetter sends a four-letter word and returns the answer ("" if the
// connection failed).
func FourLetter(addr, word string) string {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, word); err != nil {
		return ""
	}
	b, _ := io.ReadAll(conn)
	return string(b)
}
