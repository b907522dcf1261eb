package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"no command":         {},
		"unknown command":    {"frobnicate"},
		"unknown flag":       {"server", "--no-such-flag"},
		"bad int":            {"server", "--bootstrap-expect", "three"},
		"stray argument":     {"server", "--data-dir", t.TempDir(), "extra"},
		"bad log level":      {"server", "--data-dir", t.TempDir(), "--log-level", "loud"},
		"bad gossip key":     {"server", "--data-dir", t.TempDir(), "--gossip-key", "***"},
		"half TLS":           {"server", "--data-dir", t.TempDir(), "--peer-tls-ca", "ca.pem"},
		"unusable data dir":  {"server", "--name", "x", "--data-dir", file, "--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0"},
		"bad address":        {"server", "--name", "x", "--data-dir", t.TempDir(), "--http-addr", "nowhere"},
		"members bad verb":   {"members", "add", "x"},
		"status stray arg":   {"status", "x"},
		"learner bootstraps": {"server", "--name", "x", "--data-dir", t.TempDir(), "--learner", "--bootstrap-expect", "3"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(args, &out, &errb)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, errb.String())
			}
			msg := strings.TrimSpace(errb.String())
			if name != "no command" && (strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "grove:")) {
				t.Fatalf("stderr is not one grove error line: %q", msg)
			}
			if strings.Contains(msg, "goroutine ") || strings.Contains(msg, "panic") {
				t.Fatalf("stack trace on a usage error: %s", msg)
			}
		})
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("GROVE_BOOTSTRAP_EXPECT", "many")
	var out, errb bytes.Buffer
	if code := run([]string{"server", "--data-dir", t.TempDir()}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "GROVE_BOOTSTRAP_EXPECT") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestOperationFailureExitsOne(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"status", "--http", freePort(t)}, &out, &errb); code != 1 {
		t.Fatalf("status against nothing: exit %d, stderr %q", code, errb.String())
	}
}
