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

// Start runs a standalone ZooKeeper 3.8 on a free loopback port with every
// four-letter word enabled and extended types (TTL nodes) on, and returns
// its client address; it is killed when the test ends. Without Java or the
// jar the test is skipped, unless GROVE_REQUIRE_COMPAT=1 (CI installs
// them), when it fails.
func Start(t testing.TB) string {
	t.Helper()
	java, err := exec.LookPath("java")
	if _, serr := os.Stat(Jar); err != nil || serr != nil {
		if os.Getenv("GROVE_REQUIRE_COMPAT") == "1" {
			t.Fatalf("ZooKeeper is not installed (java: %v, %s: %v)", err, Jar, serr)
		}
		t.Skipf("ZooKeeper is not installed; CI installs it (see .ci/run)")
	}
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cfg := fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\n"+
		"4lw.commands.whitelist=*\nadmin.enableServer=false\nmaxClientCnxns=0\n", filepath.Join(dir, "data"), port)
	for name, content := range map[string]string{"zoo.cfg": cfg, "log4j.properties": log4j} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logf, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		t.Fatal(err)
	}
	cp := strings.Join(append([]string{dir, Jar}, logJars...), ":")
	cmd := exec.Command(java, "-Xmx256m", "-Dzookeeper.extendedTypesEnabled=true", "-cp", cp,
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(dir, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
	})
	deadline := time.Now().Add(60 * time.Second)
	for FourLetter(addr, "ruok") != "imok" {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("ZooKeeper did not start:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr
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
