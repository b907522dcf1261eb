package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
)

func TestZnodeUsageErrorsExitTwo(t *testing.T) {
	// Nothing listens here: a usage error must be found before connecting.
	nowhere := freePort(t)
	cases := map[string][]string{
		"create without path":         {"create"},
		"create extra argument":       {"create", "/a", "x", "y"},
		"create unknown flag":         {"create", "--persistent", "/a"},
		"create bad ttl":              {"create", "--ttl", "soon", "/a"},
		"create zero ttl":             {"create", "--ttl", "0s", "/a"},
		"create sub-ms ttl":           {"create", "--ttl", "10us", "/a"},
		"create ttl too long":         {"create", "--ttl", "400000h", "/a"},
		"create ephemeral ttl":        {"create", "--ephemeral", "--ttl", "1m", "/a"},
		"create container sequential": {"create", "--container", "--sequential", "/a"},
		"create container ephemeral":  {"create", "-c", "-e", "/a"},
		"create container ttl":        {"create", "--container", "--ttl", "1m", "/a"},
		"create relative path":        {"create", "a"},
		"create trailing slash":       {"create", "/a/"},
		"create @ without file":       {"create", "/a", "@"},
		"get without path":            {"get"},
		"get two paths":               {"get", "/a", "/b"},
		"get unknown flag":            {"get", "--watch", "/a"},
		"get bad path":                {"get", "/a//b"},
		"set without data":            {"set", "/a"},
		"set without path":            {"set"},
		"set bad version":             {"set", "/a", "x", "--version", "newest"},
		"set version without value":   {"set", "/a", "x", "--version"},
		"delete without path":         {"delete"},
		"delete recursive version":    {"delete", "-r", "--version", "1", "/a"},
		"delete recursive root":       {"delete", "--recursive", "/"},
		"delete unknown flag":         {"delete", "--force", "/a"},
		"ls without path":             {"ls"},
		"ls unknown flag":             {"ls", "-l", "/"},
		"stat without path":           {"stat"},
		"stat extra argument":         {"stat", "/a", "/b"},
		"tree without path":           {"tree"},
		"tree unknown flag":           {"tree", "--depth", "2", "/"},
		"watch without path":          {"watch"},
		"watch unknown flag":          {"watch", "--once", "/a"},
		"bad output":                  {"--output", "xml", "get", "/a"},
		"unknown global flag":         {"--server", nowhere, "get", "/a"},
		"bad timeout":                 {"--timeout", "soon", "get", "/a"},
		"zero timeout":                {"--timeout", "0s", "get", "/a"},
		"no servers":                  {"--servers", ",", "get", "/a"},
		"global flag after command":   {"get", "--output", "json", "/a"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"--servers", nowhere}, args...), &out, &errb)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, errb.String())
			}
			if out.Len() != 0 {
				t.Fatalf("stdout %q on a usage error", out.String())
			}
			mustOneErrorLine(t, errb.String())
		})
	}
}

func TestGlobalFlagsFromEnvironment(t *testing.T) {
	cc := mustCluster(t)
	t.Setenv("GROVE_SERVERS", cc.servers)
	t.Setenv("GROVE_OUTPUT", "json")
	var out, errb bytes.Buffer
	if code := run([]string{"create", "/env", "x"}, &out, &errb); code != 0 || out.String() != `{"path":"/env"}`+"\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"--output", "text", "get", "/env"}, &out, &errb); code != 0 || out.String() != "x" {
		t.Fatalf("flags win over the environment: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	t.Setenv("GROVE_OUTPUT", "xml")
	errb.Reset()
	if code := run([]string{"get", "/env"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "xml") {
		t.Fatalf("bad GROVE_OUTPUT: exit %d, stderr %q", code, errb.String())
	}
}

func TestServerUnreachableExitsOne(t *testing.T) {
	addr := freePort(t)
	var out, errb bytes.Buffer
	// Nothing listens there: the command says so at once, instead of
	// retrying until --timeout (that answer would say it gave up).
	code := run([]string{"--servers", addr, "--timeout", "1m", "get", "/a"}, &out, &errb)
	if code != 1 || out.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	mustOneErrorLine(t, errb.String())
	if msg := errb.String(); !strings.Contains(msg, "connect to "+addr) || !strings.Contains(msg, "no server is listening") || strings.Contains(msg, "gave up") {
		t.Fatalf("unclear error: %q", msg)
	}
}

func TestInterruptedCommandExitsOne(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errb bytes.Buffer
	if code := runContext(ctx, []string{"--servers", freePort(t), "get", "/a"}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	mustOneErrorLine(t, errb.String())
}

func TestZnodeHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || errb.Len() != 0 {
			t.Fatalf("grove %q: exit %d, stderr %q", args, code, errb.String())
		}
		for _, cmd := range []string{"create", "get", "set", "delete", "ls", "stat", "tree", "watch", "server", "status", "members", "backup", "restore", "inspect"} {
			if !strings.Contains(out.String(), "\n  "+cmd+" ") {
				t.Fatalf("grove %q does not list %s:\n%s", args, cmd, out.String())
			}
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"create", "-h"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "usage: grove create ") || !strings.Contains(out.String(), "--ttl") {
		t.Fatalf("create -h: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"--output", "json"}, &out, &errb); code != 2 || !strings.HasPrefix(errb.String(), "usage: grove ") {
		t.Fatalf("no command after the global flags: exit %d, stderr %q", code, errb.String())
	}
}

func TestWatchEndsWithSessionExitsOne(t *testing.T) {
	cc := mustCluster(t)
	cc.ok("create", "/w")
	sessions := make(chan *client.Session, 1)
	t.Cleanup(func() { dial = client.Dial })
	dial = func(ctx context.Context, addrs []string, opts ...client.Option) (*client.Session, error) {
		s, err := client.Dial(ctx, addrs, opts...)
		if err == nil {
			sessions <- s
		}
		return s, err
	}
	out, errs, done := cc.background(t.Context(), "watch", "/w")
	s := <-sessions
	dial = client.Dial // the commands below dial normally
	waitWatching(t, cc, out, "NodeDataChanged /w\n")
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, done); code != 1 {
		t.Fatalf("watch whose session ended: exit %d, stderr %q", code, errs.String())
	}
	mustOneErrorLine(t, errs.String())
	if want := "grove: watch /w: session ended: " + cliErr(grove.ErrSessionClosed) + "\n"; errs.String() != want {
		t.Fatalf("stderr %q, want %q", errs.String(), want)
	}
}

// cliErr is how the CLI prints a library error: without the "grove: "
// prefix its line already has.
func cliErr(err error) string { return strings.TrimPrefix(err.Error(), "grove: ") }

// TestGetEndsLinesOnTerminals checks the rule get prints data by: to a
// pipe or file byte for byte; on a terminal with a newline after data that
// has none (so the prompt does not glue onto it).
func TestGetEndsLinesOnTerminals(t *testing.T) {
	for _, tc := range []struct {
		terminal bool
		in, want string
	}{
		{false, "hello", "hello"}, {true, "hello", "hello\n"}, {true, "hello\n", "hello\n"}, {true, "", "\n"},
	} {
		var buf bytes.Buffer
		o := newOutput(&buf, "text")
		o.terminal = tc.terminal
		o.data([]byte(tc.in))
		_ = o.flush()
		if buf.String() != tc.want {
			t.Errorf("%q (terminal %v): %q, want %q", tc.in, tc.terminal, buf.String(), tc.want)
		}
	}
}
