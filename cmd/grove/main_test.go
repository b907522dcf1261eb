package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if groveBin != "" {
		_ = os.RemoveAll(groveBin[:len(groveBin)-len("/grove")])
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
