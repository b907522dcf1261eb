package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// runTimeout bounds one demo run in the tests: the demo takes seconds, but
// a loaded two-core machine running other tests can make it much slower.
const runTimeout = 4 * time.Minute

// story is the order of the scenes' milestone lines.
var story = []string{"cluster up", "lock", "election", "config", "queue", "failover", "done"}

// beats are phrases the milestones must contain: the point of each scene.
var beats = []string{
	"holds the lock, fencing token",
	"always growing",
	"is refused: the ledger has seen a newer fencing token",
	"took over",
	"seen by all 3 watchers",
	"the stale write is refused",
	"and dies before acknowledging it",
	"re-delivered to consumer",
	"each acknowledged exactly once",
	"is the new raft leader",
	"the ledger counted each exactly once",
	"caught up to index",
}

// scenes returns the scene names of the milestone ("==> ") lines of out,
// each run of one name once.
func scenes(out string) []string {
	var names []string
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(line, "==> ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, ":")
		if len(names) == 0 || names[len(names)-1] != name {
			names = append(names, name)
		}
	}
	return names
}

// checkStory checks that out tells the story want, every beat included.
func checkStory(t *testing.T, out string, want []string) {
	t.Helper()
	if got := scenes(out); !slices.Equal(got, want) {
		t.Errorf("milestones come in the order %q, want %q", got, want)
	}
	for _, b := range beats {
		if !containsMilestone(out, b) {
			t.Errorf("no milestone line says %q", b)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// containsMilestone reports whether a milestone line of out contains s.
func containsMilestone(out, s string) bool {
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "==> ") && strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// checkClean checks that the demo removed everything it put in tmp.
func checkClean(t *testing.T, tmp string) {
	t.Helper()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in the temporary directory: %s", e.Name())
	}
}

// demoCmd returns a command running the demo binary with args, killed
// after runTimeout, with a temporary directory of its own (TMPDIR) to
// check its clean-up in.
func demoCmd(t *testing.T, args ...string) (cmd *exec.Cmd, tmp string) {
	t.Helper()
	tmp = t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	t.Cleanup(cancel)
	cmd = exec.CommandContext(ctx, demoBin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	return cmd, tmp
}

// exitCode returns the exit code of a finished command's Run or Wait.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("run the demo: %v", err)
	return -1
}

// TestDemo runs the demo binary with the default flags: it exits 0, tells
// every scene in order and leaves no files behind.
func TestDemo(t *testing.T) {
	cmd, tmp := demoCmd(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if code := exitCode(t, cmd.Run()); code != 0 {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	checkStory(t, stdout.String(), story)
	checkClean(t, tmp)
}

// TestDemoInProcess runs the demo in the test process, with a seed and
// two rounds: under -race it checks the demo's own code for data races,
// and TestMain checks that it leaves no goroutine behind.
func TestDemoInProcess(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	if code := run(ctx, []string{"--seed", "7", "--rounds", "2"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	out := stdout.String()
	if !strings.Contains(out, "seed 7 ") {
		t.Errorf("the seed is not printed:\n%s", out)
	}
	rounds := slices.Concat(story[:1], story[1:6], story[1:6], story[6:])
	checkStory(t, out, rounds)
	checkClean(t, tmp)
}

// TestBadFlags checks that a bad invocation exits 2 with a message, and
// --help exits 0.
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--no-such-flag"}, 2},
		{[]string{"--rounds", "0"}, 2},
		{[]string{"--seed", "seven"}, 2},
		{[]string{"stray"}, 2},
		{[]string{"--help"}, 0},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd, tmp := demoCmd(t, tc.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if code := exitCode(t, cmd.Run()); code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			if !strings.Contains(stderr.String(), "usage: demo") && !strings.Contains(stderr.String(), "demo: ") {
				t.Errorf("no message on stderr: %q", &stderr)
			}
			if stdout.Len() != 0 {
				t.Errorf("something on stdout: %q", &stdout)
			}
			checkClean(t, tmp)
		})
	}
}

// started is a demo process whose output is read line by line.
type started struct {
	cmd    *exec.Cmd
	tmp    string
	lines  chan string // closed at the end of its output
	out    strings.Builder
	stderr bytes.Buffer
}

// startDemo starts the demo binary with args.
func startDemo(t *testing.T, args ...string) *started {
	t.Helper()
	s := &started{lines: make(chan string)}
	s.cmd, s.tmp = demoCmd(t, args...)
	s.cmd.Stderr = &s.stderr
	pipe, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	return s
}

// await reads output up to the first line starting with prefix; false if
// the output ended first.
func (s *started) await(prefix string) bool {
	for line := range s.lines {
		s.out.WriteString(line + "\n")
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// finish reads the rest of the output and returns the exit code.
func (s *started) finish(t *testing.T) int {
	t.Helper()
	s.await("\x00") // no line starts with NUL: read to the end
	return exitCode(t, s.cmd.Wait())
}

// TestKeep runs the demo with --keep: after the scenes the cluster stays
// up and answers on the HTTP address printed, until SIGINT ends the demo
// with exit code 0 and no files left.
func TestKeep(t *testing.T) {
	s := startDemo(t, "--keep", "--seed", "3")
	if !s.await("==> ready:") {
		code := s.finish(t)
		t.Fatalf("no ready line; exit code %d\nstdout:\n%s\nstderr:\n%s", code, &s.out, &s.stderr)
	}
	if !s.await("    n1: ") {
		t.Fatalf("no addresses after the ready line:\n%s", &s.out)
	}
	lines := strings.Split(strings.TrimSpace(s.out.String()), "\n")
	_, httpAddr, _ := strings.Cut(lines[len(lines)-1], " http ")
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := hc.Get("http://" + httpAddr + "/status")
	if err != nil {
		t.Errorf("the kept cluster does not answer on %s: %v", httpAddr, err)
	} else {
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /status: %s", resp.Status)
		}
	}
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := s.finish(t); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0\nstderr:\n%s", code, &s.stderr)
	}
	checkStory(t, s.out.String(), slices.Concat(story[:6], []string{"ready"}, story[6:]))
	checkClean(t, s.tmp)
}

// TestInterrupt interrupts the demo in the middle of the scenes: it stops
// the cluster, removes its files and exits 130.
func TestInterrupt(t *testing.T) {
	s := startDemo(t)
	if !s.await("==> lock:") {
		code := s.finish(t)
		t.Fatalf("no lock scene; exit code %d\nstdout:\n%s\nstderr:\n%s", code, &s.out, &s.stderr)
	}
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := s.finish(t); code != 130 {
		t.Errorf("exit code %d after SIGINT, want 130\nstdout:\n%s\nstderr:\n%s", code, &s.out, &s.stderr)
	}
	if !strings.Contains(s.out.String(), "interrupted") {
		t.Errorf("no word of the interruption:\n%s", &s.out)
	}
	checkClean(t, s.tmp)
}
