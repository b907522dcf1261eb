package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove/internal/exampletest"
)

// cliCluster is an in-process three-node cluster with native client ports,
// for running the znode commands against.
type cliCluster struct {
	t       *testing.T
	c       *exampletest.Cluster
	servers string
}

// mustCluster starts a cluster that stops when the test ends.
func mustCluster(t *testing.T) *cliCluster {
	t.Helper()
	c := exampletest.Start()
	t.Cleanup(c.Stop)
	return &cliCluster{t: t, c: c, servers: strings.Join(c.Addrs, ",")}
}

// grove runs grove --servers ... args and returns its stdout, stderr and
// exit code.
func (cc *cliCluster) grove(args ...string) (stdout, stderr string, code int) {
	cc.t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"--servers", cc.servers}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

// ok runs grove and fails the test unless it exits 0 with nothing on
// stderr; it returns stdout.
func (cc *cliCluster) ok(args ...string) string {
	cc.t.Helper()
	out, errs, code := cc.grove(args...)
	if code != 0 || errs != "" {
		cc.t.Fatalf("grove %q: exit %d, stderr %q", args, code, errs)
	}
	return out
}

// fails runs grove and fails the test unless it exits with code, prints
// nothing on stdout and one "grove: ..." line on stderr; it returns that
// line without its newline.
func (cc *cliCluster) fails(code int, args ...string) string {
	cc.t.Helper()
	out, errs, got := cc.grove(args...)
	if got != code {
		cc.t.Fatalf("grove %q: exit %d, want %d; stderr %q", args, got, code, errs)
	}
	if out != "" {
		cc.t.Fatalf("grove %q: stdout %q on failure", args, out)
	}
	mustOneErrorLine(cc.t, errs)
	return strings.TrimSuffix(errs, "\n")
}

// mustOneErrorLine fails the test unless s is one "grove: ..." line.
func mustOneErrorLine(t *testing.T, s string) {
	t.Helper()
	if !strings.HasPrefix(s, "grove: ") || !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Fatalf("stderr is not one grove error line: %q", s)
	}
}

// setStdin makes DATA "-" read s until the test ends.
func setStdin(t *testing.T, s string) {
	t.Helper()
	old := stdin
	stdin = strings.NewReader(s)
	t.Cleanup(func() { stdin = old })
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// background runs grove with args in a goroutine under ctx, writing to the
// returned buffers; its exit code arrives on the channel.
func (cc *cliCluster) background(ctx context.Context, args ...string) (stdout, stderr *syncBuffer, done <-chan int) {
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	codec := make(chan int, 1)
	args = append([]string{"--servers", cc.servers}, args...)
	go func() { codec <- runContext(ctx, args, stdout, stderr) }()
	return stdout, stderr, codec
}

// waitExit waits for a background grove to exit and returns its code.
func waitExit(t *testing.T, done <-chan int) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("grove did not exit")
		return 0
	}
}

// waitFor polls cond until it holds, failing the test after 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
