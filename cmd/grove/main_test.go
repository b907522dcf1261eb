package main

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Race-enabled child processes otherwise sleep a second at exit.
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	// The servers and CLI runs of these tests share per-user secrets
	// (secrets.go) in a directory of their own, not the user's.
	cfgDir, err := os.MkdirTemp("", "grove-test-config-")
	if err != nil {
		panic(err)
	}
	_ = os.Setenv("XDG_CONFIG_HOME", cfgDir)
	code := m.Run()
	_ = os.RemoveAll(cfgDir)
	for _, bin := range groveBins {
		_ = os.RemoveAll(filepath.Dir(bin))
	}
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("os/exec.(*Cmd).Wait"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop")); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
