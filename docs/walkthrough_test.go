package docs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// walkthrough is the order in which TestDocsRunForReal runs the operator
// pages: the single node of docs/cluster.md first (it takes the default
// ports), then, once it is stopped, the README's three-node cluster, which
// docs/operations.md and docs/cli.md then use (its n1 has the default
// client port 2281 and ZooKeeper port 2181).
var walkthrough = []string{"docs/cluster.md", "", "README.md", "docs/operations.md", "docs/cli.md"}

// pathsMoved are the only changes made to the documented commands: the
// paths they write outside the repository go into the test's directory.
var pathsMoved = []struct{ from, to string }{
	{"/tmp/grove-n", "$WORK/grove-n"},
	{"/backups/", "$WORK/backups/"},
	{"/var/lib/", "$WORK/var-lib/"},
	// The README builds into the current directory, the repository root;
	// here that is the test's directory.
	{"go build -o grove ./cmd/grove", `go build -C "$REPO" -o "$WORK/grove" ./cmd/grove`},
}

// TestDocsRunForReal runs every shell block of the operator pages
// (README.md, docs/cluster.md, docs/operations.md, docs/cli.md) for real,
// in order, as one bash script under set -e: servers are started as the
// pages say and every command must succeed. A block the test cannot run
// says why in a "<!-- not run: REASON -->" line, naming the test that runs
// its commands instead. It runs in a network namespace of its own, so the
// documented default ports are free; without unshare(1) and root it skips,
// unless GROVE_REQUIRE_COMPAT=1 (CI).
func TestDocsRunForReal(t *testing.T) {
	require := os.Getenv("GROVE_REQUIRE_COMPAT") == "1"
	for _, tool := range []string{"unshare", "ip", "curl", "nc", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			if require {
				t.Fatalf("%s not found (GROVE_REQUIRE_COMPAT=1)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	if os.Geteuid() != 0 {
		if require {
			t.Fatal("not root: cannot make a network namespace (GROVE_REQUIRE_COMPAT=1)")
		}
		t.Skip("needs root for a network namespace")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "grove"), "./cmd/grove")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build grove: %v\n%s", err, out)
	}

	var script strings.Builder
	script.WriteString(`set -euo pipefail
ip link set lo up
cd "$WORK"
mkdir -p home backups var-lib
echo '{"job": 1}' > job.json
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
`)
	ran, skipped := 0, 0
	for _, file := range walkthrough {
		if file == "" {
			script.WriteString("echo '### stop the servers'\nkill $(jobs -p); wait || true\n")
			continue
		}
		for _, bl := range blocks(t, "..", file) {
			if bl.lang != "sh" && bl.lang != "bash" {
				continue
			}
			if bl.notRun != "" {
				skipped++
				t.Logf("%s:%d not run: %s", bl.file, bl.line, bl.notRun)
				continue
			}
			code := bl.code
			for _, m := range pathsMoved {
				code = strings.ReplaceAll(code, m.from, m.to)
			}
			fmt.Fprintf(&script, "echo '### %s:%d'\n%s", bl.file, bl.line, code)
			ran++
		}
	}
	if ran < 5 {
		t.Fatalf("only %d blocks to run: the scan is broken", ran)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "bash", "-c", script.String())
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GROVE_") { // the pages' defaults, not the caller's settings
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"WORK="+work, "REPO="+repo, "HOME="+filepath.Join(work, "home"),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		if err == nil {
			cmd.Env = append(cmd.Env, v+"="+strings.TrimSpace(string(out)))
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("the documented commands failed: %v\n%s", err, tail(out.String(), 80))
	}
	t.Logf("%d blocks run, %d not run (reasons above)", ran, skipped)
	if testing.Verbose() {
		t.Logf("output:\n%s", tail(out.String(), 200))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
