package audit

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFailureIsLoggedAtOnce checks that a record the log cannot write
// is reported when it happens (the first one, then every 1,000th), and
// again by Close.
func TestWriteFailureIsLoggedAtOnce(t *testing.T) {
	var logs bytes.Buffer
	l, err := Open(filepath.Join(t.TempDir(), "audit.log"), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	l.Write(Record{Kind: "write", Op: "create"})
	if logs.Len() != 0 {
		t.Fatalf("a good write logged: %s", logs.String())
	}
	_ = l.f.Close() // every later write fails
	for range 3 {
		l.Write(Record{Kind: "write", Op: "create"})
	}
	if n := strings.Count(logs.String(), "could not be written"); n != 1 {
		t.Fatalf("%d reports for 3 lost records, want 1 (the first):\n%s", n, logs.String())
	}
	if err := l.Close(); err == nil {
		t.Fatal("Close hid the write error")
	}
}
