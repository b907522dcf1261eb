package backup_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/grovekit/grove/backup"
)

// FuzzInspectAndSeed writes crafted trees with valid checksums (through
// backup.NewWriter: fuzzed header index, paths and node records, seeded
// with the records of a real backup) and checks that Inspect and Seed
// never panic and agree: each accepts exactly the files the other does. A
// header index of 2^64-1 used to restore, and the node then panicked on
// its first write; crafted paths made Inspect panic.
func FuzzInspectAndSeed(f *testing.F) {
	file := take(f, sourceCluster(f), backup.Options{})
	rd, err := backup.NewReader(bytes.NewReader(file), nil)
	if err != nil {
		f.Fatal(err)
	}
	var paths []string
	var recs [][]byte
	for {
		p, rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Fatal(err)
		}
		paths, recs = append(paths, p), append(recs, bytes.Clone(rec))
	}
	index := rd.Header().Index
	f.Add(index, strings.Join(paths[:2], "\n"), recs[0], recs[1])
	f.Add(^uint64(0), strings.Join(paths[:2], "\n"), recs[0], recs[1])
	f.Add(index, "/\nrelative\n/a", recs[0], recs[1])
	f.Add(index, "/\n\n/a//b", recs[0], recs[1])
	f.Add(index, "/\n/b\n/a", recs[0], recs[1])
	f.Add(index, "/\n/x/y", recs[0], recs[1])
	f.Add(uint64(1), strings.Join(paths[:2], "\n"), recs[0], recs[1])
	f.Fuzz(func(t *testing.T, index uint64, paths string, rootRec, rec []byte) {
		var buf bytes.Buffer
		w, err := backup.NewWriter(&buf, backup.Header{Index: index}, backup.Options{})
		if err != nil {
			return
		}
		for i, p := range strings.Split(paths, "\n") {
			r := rec
			if i == 0 {
				r = rootRec
			}
			if err := w.Node(p, r, 0); err != nil {
				return
			}
		}
		if err := w.Close(); err != nil {
			return
		}
		_, ierr := backup.Inspect(bytes.NewReader(buf.Bytes()), nil, 3, nil)
		_, _, serr := backup.Seed(bytes.NewReader(buf.Bytes()), nil, t.TempDir(), 1)
		if (ierr == nil) != (serr == nil) {
			t.Fatalf("Inspect and Seed disagree: inspect %v, seed %v", ierr, serr)
		}
	})
}

// TestImpossibleFilesAreRefused checks crafted files with valid checksums:
// an index no cluster reaches, a relative path, a child before its parent,
// a zxid beyond the file's index. Inspect and Seed both refuse each with
// ErrCorrupt.
func TestImpossibleFilesAreRefused(t *testing.T) {
	file := take(t, sourceCluster(t), backup.Options{})
	rd, err := backup.NewReader(bytes.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, rootRec, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	_, appRec, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	index := rd.Header().Index
	for _, tt := range []struct {
		name  string
		index uint64
		paths []string
	}{
		{"index 2^64-1", ^uint64(0), []string{"/", "/app"}},
		{"relative path", index, []string{"/", "app"}},
		{"orphan", index, []string{"/", "/x/app"}},
		{"zxid beyond the index", 1, []string{"/", "/app"}},
	} {
		var buf bytes.Buffer
		w, err := backup.NewWriter(&buf, backup.Header{Index: tt.index}, backup.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range tt.paths {
			r := appRec
			if i == 0 {
				r = rootRec
			}
			if err := w.Node(p, r, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := backup.Inspect(bytes.NewReader(buf.Bytes()), nil, 3, nil); !errors.Is(err, backup.ErrCorrupt) {
			t.Errorf("%s: inspect: %v", tt.name, err)
		}
		if _, _, err := backup.Seed(bytes.NewReader(buf.Bytes()), nil, t.TempDir(), 1); !errors.Is(err, backup.ErrCorrupt) {
			t.Errorf("%s: seed: %v", tt.name, err)
		}
	}
}
