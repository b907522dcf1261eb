package docs_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grovekit/grove/internal/testutil"
)

// TestHardenedExampleRuns runs docs/security.md's hardened three-node
// cluster as written, on one machine: its "grove server" command for node
// 1, and the same for nodes 2 and 3 (their names, addresses and
// certificates), with 10.0.0.K mapped to the loopback address 127.0.0.1K
// and /etc/grove, /var/lib/grove to a temporary directory that holds a
// cluster key, an HTTP token and certificates naming each node. Its
// "grove status" command must then report a leader. A flag the docs add
// that the server refuses, or a setting that keeps the cluster from
// forming, fails the test.
func TestHardenedExampleRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers; run without -short")
	}
	serverCmd, statusCmd := hardenedCommands(t)
	bin := buildGrove(t)
	dir := t.TempDir()
	for file, secret := range map[string]string{"cluster.key": "0123456789abcdef0123456789abcdef-key", "http.token": "0123456789abcdef-token"} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca := testutil.MustCA(t, dir, "ca")
	for k := 1; k <= 3; k++ {
		ca.MustNodeCertFor(t, dir, fmt.Sprintf("n%d", k), net.IPv4(127, 0, 0, byte(10+k)))
	}
	var logs []*bytes.Buffer
	for k := 1; k <= 3; k++ {
		args := nodeArgs(serverCmd, k, dir)
		var out bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &out)
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	status := nodeArgs(statusCmd, 1, dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command(bin, status...).CombinedOutput()
		if err == nil && strings.Contains(string(out), "leader") && !strings.Contains(string(out), "leader ,") {
			t.Logf("grove %s:\n%s", strings.Join(status, " "), out)
			return
		}
		if time.Now().After(deadline) {
			for i, l := range logs {
				t.Logf("--- n%d ---\n%s", i+1, l.String())
			}
			t.Fatalf("the hardened cluster did not form: grove status: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hardenedCommands returns the arguments of the hardened example's
// "grove server" and "grove status" commands.
func hardenedCommands(t *testing.T) (server, status []string) {
	t.Helper()
	b, err := os.ReadFile("security.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "## A hardened three-node cluster")
	if i < 0 {
		t.Fatal("docs/security.md has no hardened example")
	}
	for _, bl := range blocks(t, "..", "docs/security.md") {
		if bl.lang != "sh" || !strings.Contains(doc[i:], bl.code) {
			continue
		}
		code := strings.ReplaceAll(bl.code, "\\\n", " ")
		for _, line := range strings.Split(code, "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) > 2 && f[0] == "grove" && f[1] == "server":
				server = f[1:]
			case len(f) > 2 && f[0] == "grove" && f[1] == "status":
				status = f[1:]
			}
		}
		if server != nil && status != nil {
			return server, status
		}
	}
	t.Fatal("the hardened example has no grove server and grove status commands")
	return nil, nil
}

var tenNet = regexp.MustCompile(`10\.0\.0\.([0-9])`)

// nodeArgs turns node 1's arguments into node k's, on this machine.
func nodeArgs(args []string, k int, dir string) []string {
	own := map[string]bool{"--peer-addr": true, "--gossip-addr": true, "--http-addr": true, "--client-addr": true, "--zk-addr": true}
	out := make([]string, len(args))
	for i, a := range args {
		if i > 0 && own[args[i-1]] {
			a = strings.Replace(a, "10.0.0.1:", fmt.Sprintf("10.0.0.%d:", k), 1)
		}
		if i > 0 && args[i-1] == "--name" {
			a = fmt.Sprintf("n%d", k)
		}
		a = strings.ReplaceAll(a, "/etc/grove/n1", fmt.Sprintf("/etc/grove/n%d", k))
		a = strings.ReplaceAll(a, "/etc/grove/", dir+"/")
		a = strings.ReplaceAll(a, "/var/lib/grove", filepath.Join(dir, fmt.Sprintf("data-n%d", k)))
		a = tenNet.ReplaceAllString(a, "127.0.0.1$1")
		out[i] = a
	}
	return out
}

// buildGrove builds the grove binary once per test run.
func buildGrove(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "grove")
	build := exec.Command("go", "build", "-o", bin, "./cmd/grove")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build grove: %v\n%s", err, out)
	}
	return bin
}
