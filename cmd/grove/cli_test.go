package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grovekit/grove"
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
		"members bad verb":   {"members", "rename", "x"},
		"status stray arg":   {"status", "x"},
		"learner bootstraps": {"server", "--name", "x", "--data-dir", t.TempDir(), "--learner", "--bootstrap-expect", "3"},
		"backup no file":     {"backup"},
		"backup two files":   {"backup", "a", "b"},
		"backup bad flag":    {"backup", "--zip", "f"},
		"backup bad every":   {"backup", "--every", "-1s", "d"},
		"backup keep zero":   {"backup", "--every", "1h", "--keep", "0", "d"},
		"backup short key":   {"backup", "--encrypt-key-file", file, "f"},
		"backup no key file": {"backup", "--encrypt-key-file", filepath.Join(t.TempDir(), "missing"), "f"},
		"restore no from":    {"restore", "--data-dir", t.TempDir()},
		"restore no dir":     {"restore", "--from", file},
		"restore stray arg":  {"restore", "--from", file, "--data-dir", t.TempDir(), "x"},
		"inspect no file":    {"inspect"},
		"inspect bad top":    {"inspect", "--top", "-1", file},
		"inspect short key":  {"inspect", "--encrypt-key-file", file, file},
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

// Backup files that are missing, damaged or not backups make inspect and
// restore exit 1 with one line; a restore into a non-empty dir too, and it
// leaves the dir as it was.
func TestBackupFileErrorsExitOne(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("GROVEBAK but not really"), 0o600); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(full, 0o750); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(full, "keep-me")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"inspect missing":   {"inspect", filepath.Join(dir, "missing")},
		"inspect junk":      {"inspect", junk},
		"restore junk":      {"restore", "--from", junk, "--data-dir", filepath.Join(dir, "new")},
		"restore non-empty": {"restore", "--from", junk, "--data-dir", full},
		"backup no server":  {"backup", "--http", freePort(t), filepath.Join(dir, "b")},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", code, errb.String())
			}
			if msg := strings.TrimSpace(errb.String()); strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "grove:") {
				t.Fatalf("stderr is not one grove error line: %q", msg)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Fatalf("a refused restore created its data dir: %v", err)
	}
	if entries, _ := os.ReadDir(full); len(entries) != 1 {
		t.Fatalf("a refused restore changed a non-empty dir: %d entries", len(entries))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("files left behind next to the data dirs: %d entries", len(entries))
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

// TestVersion checks grove version and grove --version, and that the
// command takes no argument.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "grove "+grove.Version+" (") {
			t.Fatalf("%v: exit %d, %q %q", args, code, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"--output", "json", "version"}, &out, &errb); code != 0 || !strings.Contains(out.String(), `"version":"`+grove.Version+`"`) {
		t.Fatalf("json: exit %d, %q", code, out.String())
	}
	if code := run([]string{"version", "extra"}, &out, &errb); code != 2 {
		t.Fatalf("version extra: exit %d", code)
	}
}

// TestErrorsSayGroveOnce checks that a library error wrapped by a command
// keeps one "grove:" prefix.
func TestErrorsSayGroveOnce(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"create", "nonabs", "x"}, &out, &errb); code == 0 || strings.Count(errb.String(), "grove:") != 1 ||
		!strings.Contains(errb.String(), `create: invalid path "nonabs"`) {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
