package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// demoBin is the demo binary the tests run, built by TestMain without
// -race (TestDemoInProcess runs the same code under the race detector).
var demoBin string

// TestMain builds the demo binary, runs the tests, removes the binary and
// checks that no goroutine outlives the tests (the in-process run's
// included).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "grove-demo-bin-")
	if err == nil {
		demoBin = filepath.Join(dir, "demo")
		var out []byte
		if out, err = exec.Command("go", "build", "-o", demoBin, ".").CombinedOutput(); err != nil {
			err = fmt.Errorf("%w\n%s", err, out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build the demo:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
