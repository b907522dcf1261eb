package backup_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/backup"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/internal/fsm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sourceCluster returns a one-node cluster holding a small tree with an
// ephemeral, a container, a TTL node and sequential nodes.
func sourceCluster(t testing.TB) *core.Node {
	t.Helper()
	c := coretest.NewCluster(t, 1)
	n := c.WaitLeader(t.Context())
	s, err := n.Session(t.Context(), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(t.Context()) })
	ctx := t.Context()
	must := func(_ string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Create(ctx, "/app", []byte("app"), grove.ModePersistent, grove.OpenACLUnsafe))
	must(s.Create(ctx, "/app/box", nil, grove.ModeContainer, grove.OpenACLUnsafe))
	must(s.Create(ctx, "/app/box/item-", []byte("one"), grove.ModePersistentSequential, grove.OpenACLUnsafe))
	must(s.Create(ctx, "/app/live", nil, grove.ModeEphemeral, grove.OpenACLUnsafe))
	must(s.CreateTTL(ctx, "/app/ttl", []byte("t"), grove.ModePersistentWithTTL, grove.OpenACLUnsafe, time.Hour))
	for i := range 50 {
		must(s.Create(ctx, fmt.Sprintf("/app/k%02d", i), bytes.Repeat([]byte{byte(i)}, 100), grove.ModePersistent, grove.OpenACLUnsafe))
	}
	return n
}

func take(t testing.TB, n *core.Node, opts backup.Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	h, tot, err := backup.Write(t.Context(), n, &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	if h.Index == 0 || tot.Znodes == 0 || tot.Ephemerals != 1 {
		t.Fatalf("header %+v totals %+v", h, tot)
	}
	return buf.Bytes()
}

func readAll(file []byte, key []byte) ([]string, error) {
	rd, err := backup.NewReader(bytes.NewReader(file), key)
	if err != nil {
		return nil, err
	}
	var paths []string
	for {
		p, _, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return paths, nil
		}
		if err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
}

func newKey(t *testing.T) []byte {
	k := make([]byte, backup.KeySize)
	_, _ = rand.Read(k)
	return k
}

// Every encoding reads back to the same znodes; the ephemeral is left out.
func TestRoundTripEveryEncoding(t *testing.T) {
	n := sourceCluster(t)
	key := newKey(t)
	var want []string
	for _, opts := range []backup.Options{{}, {Gzip: true}, {Key: key}, {Gzip: true, Key: key}} {
		file := take(t, n, opts)
		got, err := readAll(file, opts.Key)
		if err != nil {
			t.Fatalf("%+v: %v", opts, err)
		}
		if want == nil {
			want = got
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%+v: paths differ", opts)
		}
		for _, p := range got {
			if p == "/app/live" {
				t.Fatal("the ephemeral is in the backup")
			}
		}
	}
	if len(want) < 55 {
		t.Fatalf("%d paths", len(want))
	}
}

// Damaged files are refused with typed errors: a flipped bit anywhere, a
// truncation anywhere, a wrong key, a missing key, a future version,
// something else entirely.
func TestDamagedFilesAreRefused(t *testing.T) {
	n := sourceCluster(t)
	key := newKey(t)
	for _, opts := range []backup.Options{{}, {Gzip: true}, {Key: key, Gzip: true}} {
		file := take(t, n, opts)
		for i := 0; i < len(file); i += max(1, len(file)/97) {
			bad := bytes.Clone(file)
			bad[i] ^= 0x10
			if _, err := readAll(bad, opts.Key); err == nil {
				t.Fatalf("%+v: flipped byte %d of %d read fine", opts, i, len(file))
			}
			if _, err := readAll(file[:i], opts.Key); err == nil {
				t.Fatalf("%+v: truncated to %d of %d read fine", opts, i, len(file))
			}
		}
		if _, err := readAll(append(bytes.Clone(file), 0), opts.Key); !errors.Is(err, backup.ErrCorrupt) {
			t.Fatalf("%+v: trailing byte: %v", opts, err)
		}
	}
	enc := take(t, n, backup.Options{Key: key})
	if _, err := readAll(enc, newKey(t)); !errors.Is(err, backup.ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := readAll(enc, nil); !errors.Is(err, backup.ErrNeedKey) {
		t.Fatalf("no key: %v", err)
	}
	v2 := bytes.Clone(enc)
	v2[8] = 2
	if _, err := readAll(v2, key); !errors.Is(err, backup.ErrVersion) {
		t.Fatalf("version 2: %v", err)
	}
	if _, err := readAll([]byte("SQLite format 3\x00 and more bytes"), nil); !errors.Is(err, backup.ErrNotBackup) {
		t.Fatalf("foreign file: %v", err)
	}
	if _, err := readAll(nil, nil); !errors.Is(err, backup.ErrNotBackup) {
		t.Fatalf("empty file: %v", err)
	}
}

// Seed restores a file into a data dir; a damaged file fails it.
func TestSeedAndInspect(t *testing.T) {
	n := sourceCluster(t)
	key := newKey(t)
	file := take(t, n, backup.Options{Gzip: true, Key: key})
	sum, err := backup.Inspect(bytes.NewReader(file), key, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Containers != 1 || sum.TTL != 1 || sum.Sequential != 1 || sum.Largest[0].Path != "/app" || sum.Totals.Ephemerals != 1 {
		t.Fatalf("summary %+v", sum)
	}
	var dumped int
	if _, err := backup.Inspect(bytes.NewReader(file), key, 3, func(string, fsm.NodeInfo) error { dumped++; return nil }); err != nil || uint64(dumped) != sum.Totals.Znodes {
		t.Fatalf("dump: %d of %d: %v", dumped, sum.Totals.Znodes, err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	h, tot, err := backup.Seed(bytes.NewReader(file), key, dir, 9)
	if err != nil || h.Index == 0 || tot.Znodes != sum.Totals.Znodes {
		t.Fatalf("seed: %+v %+v %v", h, tot, err)
	}
	if !core.Seeded(dir) {
		t.Fatal("not seeded")
	}
	bad := bytes.Clone(file)
	bad[len(bad)-1] ^= 1
	if _, _, err := backup.Seed(bytes.NewReader(bad), key, filepath.Join(t.TempDir(), "bad"), 9); !errors.Is(err, backup.ErrCorrupt) {
		t.Fatalf("seed from a damaged file: %v", err)
	}
}

// A backup taken while a writer keeps writing holds every write
// acknowledged before it started and is a state of one index.
func TestBackupWhileWriting(t *testing.T) {
	n := sourceCluster(t)
	s, err := n.Session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	stop := make(chan struct{})
	acked := make(chan int, 1<<16)
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := s.Create(t.Context(), fmt.Sprintf("/w%06d", i), nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
				done <- err
				return
			}
			acked <- i
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(acked) < 200 {
		select {
		case err := <-done:
			t.Fatalf("writer stopped early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer did not get 200 writes acknowledged")
		}
		time.Sleep(time.Millisecond)
	}
	before := len(acked)
	file := take(t, n, backup.Options{Gzip: true})
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	paths, err := readAll(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, p := range paths {
		have[p] = true
	}
	for i := range before {
		if !have[fmt.Sprintf("/w%06d", i)] {
			t.Fatalf("write %d, acknowledged before the backup, is missing", i)
		}
	}
	// One index: the written nodes form a gap-free prefix.
	count := 0
	for have[fmt.Sprintf("/w%06d", count)] {
		count++
	}
	for p := range have {
		var i int
		if _, err := fmt.Sscanf(p, "/w%06d", &i); err == nil && i >= count {
			t.Fatalf("backup holds %s but not /w%06d", p, count)
		}
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	raw := newKey(t)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if k, err := backup.LoadKey(write("raw", raw)); err != nil || !bytes.Equal(k, raw) {
		t.Fatalf("raw key: %v", err)
	}
	if k, err := backup.LoadKey(write("hex", fmt.Appendf(nil, "%x\n", raw))); err != nil || !bytes.Equal(k, raw) {
		t.Fatalf("hex key: %v", err)
	}
	if _, err := backup.LoadKey(write("short", []byte("secret"))); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := backup.LoadKey(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing key file accepted")
	}
}

func FuzzReader(f *testing.F) {
	key := bytes.Repeat([]byte{7}, backup.KeySize)
	for _, opts := range []backup.Options{{}, {Gzip: true}, {Key: key}} {
		var buf bytes.Buffer
		w, err := backup.NewWriter(&buf, backup.Header{Index: 5}, opts)
		if err != nil {
			f.Fatal(err)
		}
		_ = w.Node("/", []byte("not a real record"), 0)
		_ = w.Node("/a", []byte("x"), 1)
		_ = w.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rd, err := backup.NewReader(bytes.NewReader(b), key)
		if err != nil {
			return
		}
		for range 1 << 16 {
			if _, _, err := rd.Next(); err != nil {
				return
			}
		}
		t.Fatal("Next never ended")
	})
}
