package core_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
)

// TestDamagedRecordIsNeverServed flips one byte inside a stored znode's
// value in the state file of a stopped node, then restarts it: a read of
// that znode fails with ErrCorrupt naming the path instead of returning the
// damaged bytes, the scrub finds the record, and the node counts it. Other
// znodes are still served. Before checksums the flipped byte was served.
func TestDamagedRecordIsNeverServed(t *testing.T) {
	dir := t.TempDir()
	canary := []byte("grove-scrub-canary-0123456789abcdef")
	n := mustStartSingle(t, dir)
	s := mustSession(t, n, 10*time.Second)
	if _, err := s.create(t.Context(), "/victim", canary, grove.ModePersistent); err != nil {
		t.Fatal(err)
	}
	if _, err := s.create(t.Context(), "/bystander", []byte("fine"), grove.ModePersistent); err != nil {
		t.Fatal(err)
	}
	before := mustStats(t, n).CorruptRecords // counted per process
	must(t, n.Close())

	file := filepath.Join(dir, "grove.db")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := 0
	for i := bytes.Index(b, canary); i >= 0; {
		b[i+len(canary)/2] ^= 0x01
		flipped++
		next := bytes.Index(b[i+1:], canary)
		if next < 0 {
			break
		}
		i += 1 + next
	}
	if flipped == 0 {
		t.Fatal("the value is not in the state file")
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}

	n = mustStartSingle(t, dir)
	data, _, _, err := n.Get(t.Context(), core.Read{}, "/victim")
	if !errors.Is(err, grove.ErrCorrupt) {
		t.Fatalf("read of the damaged znode: %q, %v; want ErrCorrupt", data, err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte("/victim")) {
		t.Fatalf("the error does not name the path: %v", err)
	}
	if data, _, _, err := n.Get(t.Context(), core.Read{}, "/bystander"); err != nil || string(data) != "fine" {
		t.Fatalf("an intact znode: %q, %v", data, err)
	}
	bad, err := n.Scrub()
	if err != nil || bad != 1 {
		t.Fatalf("scrub found %d damaged records (%v), want 1", bad, err)
	}
	if st := mustStats(t, n); st.CorruptRecords < before+2 {
		t.Fatalf("corrupt records counted: %d, want at least %d", st.CorruptRecords, before+2)
	}
}
