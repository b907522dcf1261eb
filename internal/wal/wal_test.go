package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustOpen(t *testing.T, dir string, opts Options) (*WAL, *Replay) {
	t.Helper()
	w, rp, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w, rp
}

func ents(from, to, term uint64) []Entry {
	var out []Entry
	for i := from; i <= to; i++ {
		out = append(out, Entry{Index: i, Term: term, Data: fmt.Appendf(nil, "e%d.%d", i, term)})
	}
	return out
}

func mustAppend(t *testing.T, w *WAL, es []Entry, state []byte) {
	t.Helper()
	if err := w.Append(es, state); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
}

// checkEntries compares a replay's entries with want (index, term, data).
func checkEntries(t *testing.T, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("replayed %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Index != want[i].Index || got[i].Term != want[i].Term || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("entry %d: got %d/%d %q, want %d/%d %q", i, got[i].Index, got[i].Term, got[i].Data, want[i].Index, want[i].Term, want[i].Data)
		}
	}
}

func TestAppendReplay(t *testing.T) {
	dir := t.TempDir()
	w, rp := mustOpen(t, dir, Options{})
	if len(rp.Entries) != 0 || rp.State != nil {
		t.Fatalf("fresh log replayed %+v", rp)
	}
	mustAppend(t, w, ents(1, 10, 1), []byte("hs1"))
	mustAppend(t, w, ents(11, 12, 1), nil)
	// Unsynced records are lost by a crash; Close models that.
	if err := w.Append(ents(13, 13, 1), []byte("hs-unsynced")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, rp = mustOpen(t, dir, Options{})
	checkEntries(t, rp.Entries, ents(1, 12, 1))
	if string(rp.State) != "hs1" {
		t.Fatalf("state %q, want hs1", rp.State)
	}
}

func TestOverwriteSuffix(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, Options{})
	mustAppend(t, w, ents(1, 10, 1), nil)
	mustAppend(t, w, ents(6, 8, 2), nil) // a new leader replaces 6..10
	mustAppend(t, w, ents(9, 9, 2), nil)
	_ = w.Close()
	_, rp := mustOpen(t, dir, Options{})
	checkEntries(t, rp.Entries, append(ents(1, 5, 1), ents(6, 9, 2)...))
}

func TestGapIsCorrupt(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, Options{})
	mustAppend(t, w, ents(1, 3, 1), nil)
	mustAppend(t, w, ents(5, 5, 1), nil)
	_ = w.Close()
	if _, _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a gap: %v, want ErrCorrupt", err)
	}
}

func TestSegmentsCutAndCompact(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, Options{SegmentSize: 512})
	for i := uint64(1); i <= 100; i++ {
		mustAppend(t, w, ents(i, i, 1), fmt.Appendf(nil, "hs%d", i))
	}
	if w.Segments() < 5 {
		t.Fatalf("%d segments after 100 entries in 512-byte segments", w.Segments())
	}
	before := w.Segments()
	removed, err := w.Compact(50)
	if err != nil {
		t.Fatal(err)
	}
	if removed == 0 || w.Segments() != before-removed {
		t.Fatalf("compact removed %d of %d segments, %d left", removed, before, w.Segments())
	}
	_ = w.Close()
	_, rp := mustOpen(t, dir, Options{SegmentSize: 512})
	if len(rp.Entries) == 0 || rp.Entries[0].Index > 51 || rp.Entries[len(rp.Entries)-1].Index != 100 {
		t.Fatalf("after compaction replayed %d..%d", rp.Entries[0].Index, rp.Entries[len(rp.Entries)-1].Index)
	}
	checkEntries(t, rp.Entries, ents(rp.Entries[0].Index, 100, 1))
	if string(rp.State) != "hs100" {
		t.Fatalf("state %q after compaction, want hs100", rp.State)
	}
	// Compacting everything keeps the active segment and the newest state.
	w2, _, err := Open(dir, Options{SegmentSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Compact(1000); err != nil {
		t.Fatal(err)
	}
	_ = w2.Close()
	_, rp = mustOpen(t, dir, Options{SegmentSize: 512})
	if string(rp.State) != "hs100" {
		t.Fatalf("state %q after full compaction, want hs100", rp.State)
	}
}

func TestRecordLargerThanSegment(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, Options{SegmentSize: 256})
	big := Entry{Index: 1, Term: 1, Data: bytes.Repeat([]byte("x"), 4096)}
	mustAppend(t, w, []Entry{big}, []byte("hs"))
	mustAppend(t, w, ents(2, 3, 1), nil)
	_ = w.Close()
	_, rp := mustOpen(t, dir, Options{SegmentSize: 256})
	checkEntries(t, rp.Entries, append([]Entry{big}, ents(2, 3, 1)...))
}

func TestReset(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, Options{SegmentSize: 1024})
	for i := uint64(1); i <= 40; i++ {
		mustAppend(t, w, ents(i, i, 1), []byte("old"))
	}
	if err := w.Reset(500, 3, []byte("new"), ents(501, 502, 3)); err != nil {
		t.Fatal(err)
	}
	if w.Segments() != 1 {
		t.Fatalf("%d segments after a reset, want 1", w.Segments())
	}
	mustAppend(t, w, ents(503, 503, 3), nil)
	_ = w.Close()
	_, rp := mustOpen(t, dir, Options{SegmentSize: 1024})
	if rp.ResetIndex != 500 || rp.ResetTerm != 3 || string(rp.State) != "new" {
		t.Fatalf("reset %d/%d state %q", rp.ResetIndex, rp.ResetTerm, rp.State)
	}
	checkEntries(t, rp.Entries, ents(501, 503, 3))
}

func segmentPaths(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tear     func(b []byte, end int) // end: where the last record ends
		lastKept bool                    // whether the last record survives
	}{
		{"half-written record", func(b []byte, end int) { clear(b[end-10 : end]) }, false},
		{"garbage after the records", func(b []byte, end int) { copy(b[end:], "garbage that is no record at all") }, true},
		{"flipped byte in the last record", func(b []byte, end int) { b[end-3] ^= 0xff }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, _ := mustOpen(t, dir, Options{SegmentSize: 4096})
			mustAppend(t, w, ents(1, 5, 1), []byte("hs"))
			end := int(w.off)
			mustAppend(t, w, ents(6, 6, 1), nil)
			end2 := int(w.off)
			_ = w.Close()
			path := segmentPaths(t, dir)[0]
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tc.tear(b, end2)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			w, rp := mustOpen(t, dir, Options{SegmentSize: 4096})
			want, resume := ents(1, 6, 1), end2
			if !tc.lastKept {
				want, resume = ents(1, 5, 1), end
			}
			if rp.Torn == 0 || w.off != int64(resume) {
				t.Fatalf("torn %d bytes, writes resume at %d; want some torn, resume at %d", rp.Torn, w.off, resume)
			}
			checkEntries(t, rp.Entries, want)
			// The log goes on after the torn tail, and a later replay sees
			// no leftover of it.
			next := want[len(want)-1].Index + 1
			mustAppend(t, w, ents(next, next, 2), nil)
			_ = w.Close()
			_, rp = mustOpen(t, dir, Options{SegmentSize: 4096})
			checkEntries(t, rp.Entries, append(want, ents(next, next, 2)...))
			if rp.Torn != 0 {
				t.Fatalf("a second open found %d torn bytes", rp.Torn)
			}
		})
	}
}

func TestDamageBeforeTheLastSegmentIsCorrupt(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, Options{SegmentSize: 512})
	for i := uint64(1); i <= 40; i++ {
		mustAppend(t, w, ents(i, i, 1), nil)
	}
	_ = w.Close()
	paths := segmentPaths(t, dir)
	if len(paths) < 2 {
		t.Fatalf("%d segments", len(paths))
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	b[headerSize+recordHeader+3] ^= 0x01
	if err := os.WriteFile(paths[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir, Options{SegmentSize: 512}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
}

func TestForeignFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "0000000000000001.wal"), []byte("not a log segment, but long enough"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open foreign segment: %v, want ErrCorrupt", err)
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.wal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a stray .wal file: %v, want ErrCorrupt", err)
	}
}

// FuzzOpen writes arbitrary bytes after a valid segment's records (as the
// last segment, and as one before it) and opens the log: it must never
// panic, and what it replays must be in order without gaps.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{}, false)
	f.Add([]byte("garbage"), true)
	f.Add([]byte{30, 0, 0, 0, 1, 2, 3, 4, 1, 7, 0, 0, 0, 0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, tail []byte, middle bool) {
		dir := t.TempDir()
		w, _, err := Open(dir, Options{SegmentSize: 4096, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(ents(1, 3, 1), []byte("hs")); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		off := w.off
		_ = w.Close()
		path := segmentPaths(t, dir)[0]
		fh, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteAt(tail, off); err != nil {
			t.Fatal(err)
		}
		_ = fh.Close()
		if middle {
			if err := os.WriteFile(filepath.Join(dir, "0000000000000002.wal"), header(), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		w, rp, err := Open(dir, Options{SegmentSize: 4096, NoSync: true})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: %v, want nil or ErrCorrupt", err)
			}
			return
		}
		defer func() { _ = w.Close() }()
		for i := 1; i < len(rp.Entries); i++ {
			if rp.Entries[i].Index != rp.Entries[i-1].Index+1 {
				t.Fatalf("replay has %d after %d", rp.Entries[i].Index, rp.Entries[i-1].Index)
			}
		}
	})
}
