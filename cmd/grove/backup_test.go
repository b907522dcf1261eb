package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/backup"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/internal/fsm"
)

// groveCmd runs the grove binary and returns its stdout, stderr and exit
// code.
func groveCmd(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// The race runtime otherwise sleeps a second at exit.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run grove %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// walkTree returns every znode of the tree reachable through s: path →
// data.
func walkTree(ctx context.Context, t *testing.T, s *client.Session) map[string]string {
	t.Helper()
	tree := map[string]string{}
	var walk func(p string)
	walk = func(p string) {
		data, _, err := s.Get(ctx, p)
		if err != nil {
			t.Fatalf("get %s: %v", p, err)
		}
		tree[p] = string(data)
		kids, _, err := s.Children(ctx, p)
		if err != nil {
			t.Fatalf("children %s: %v", p, err)
		}
		for _, k := range kids {
			walk(grove.Join(p, k))
		}
	}
	walk("/")
	return tree
}

// The end-to-end test: a three-process cluster with 10,000 znodes
// written by the CLI and a Go client, a backup taken while a writer keeps
// writing, a second cluster restored from it holding exactly the backed-up
// tree, and damaged backups refused without anything written.
func TestBackupRestoreEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; run without -short")
	}
	const total, byCLI = 10000, 100
	began := time.Now()
	c := newProcCluster(t)
	all := c.startThree("n")
	n1, n2, n3 := all[0], all[1], all[2]
	bin := c.bin
	servers := strings.Join([]string{n1.client, n2.client, n3.client}, ",")
	ctx := t.Context()

	if out, errOut, code := groveCmd(t, bin, "--servers", servers, "create", "/data", "root of the test"); code != 0 {
		t.Fatalf("create /data: exit %d: %s %s", code, out, errOut)
	}
	for i := range byCLI {
		p := fmt.Sprintf("/data/cli-%04d", i)
		if out, errOut, code := groveCmd(t, bin, "--servers", servers, "create", p, "from the cli "+p); code != 0 || strings.TrimSpace(out) != p {
			t.Fatalf("create %s: exit %d: %q %s", p, code, out, errOut)
		}
	}
	t.Logf("%v: %d znodes created by the CLI", time.Since(began), byCLI)
	s, err := client.Dial(ctx, []string{n1.client, n2.client, n3.client}, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(context.Background()) }()
	// Pipelined: 16 goroutines share the session.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := byCLI + w; i < total-1; i += 16 {
				p := fmt.Sprintf("/data/go-%05d", i)
				if _, err := s.Create(ctx, p, []byte("from go "+p), grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%v: %d znodes created by a Go client", time.Since(began), total-byCLI)
	if _, err := s.Create(ctx, "/data/eph", nil, grove.ModeEphemeral, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}

	// A writer keeps writing through the backup; every write's zxid is
	// recorded when it is acknowledged.
	type ack struct {
		path string
		zxid int64
	}
	var amu sync.Mutex
	var acks []ack
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			p := fmt.Sprintf("/during/w-%06d", i)
			if i == 0 {
				p = "/during"
			}
			_, st, err := s.Create2(wctx, p, []byte(p), grove.ModePersistent, grove.OpenACLUnsafe)
			if err != nil {
				if wctx.Err() != nil {
					err = nil
				}
				writerDone <- err
				return
			}
			amu.Lock()
			acks = append(acks, ack{p, st.Czxid})
			amu.Unlock()
		}
	}()
	ackCount := func() int { amu.Lock(); defer amu.Unlock(); return len(acks) }
	c.waitFor("the writer to be writing", 30*time.Second, func() bool { return ackCount() >= 50 })

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "cluster.grovebak")
	follower := n1
	if l := c.leader(all...); l == n1 {
		follower = n2
	}
	out, errOut, code := groveCmd(t, bin, "backup", "--http", follower.httpAdr, "--gzip", "--encrypt-key-file", keyFile, file)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s %s", code, out, errOut)
	}
	c.waitFor("writes after the backup", 30*time.Second, func() bool { return ackCount() >= 100 })
	stopWriter()
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	t.Logf("%v: backup: %s", time.Since(began), strings.TrimSpace(out))

	// What the file holds, verified.
	want := map[string]string{}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := backup.Inspect(f, key, 5, func(p string, info fsm.NodeInfo) error {
		want[p] = string(info.Data)
		return nil
	})
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	index := int64(sum.Header.Index)
	amu.Lock()
	before, after := 0, 0
	for _, a := range acks {
		_, ok := want[a.path]
		switch {
		case a.zxid <= index && !ok:
			t.Fatalf("%s was acknowledged at zxid %d, before the backup's %d, but is not in it", a.path, a.zxid, index)
		case a.zxid > index && ok:
			t.Fatalf("%s was written at zxid %d, after the backup's %d, but is in it", a.path, a.zxid, index)
		case a.zxid <= index:
			before++
		default:
			after++
		}
	}
	amu.Unlock()
	if before == 0 || after == 0 {
		t.Fatalf("the writer's acks fall %d before and %d after the backup: not concurrent", before, after)
	}
	for i := range total - 1 {
		p := fmt.Sprintf("/data/go-%05d", i)
		if i < byCLI {
			p = fmt.Sprintf("/data/cli-%04d", i)
		}
		if _, ok := want[p]; !ok {
			t.Fatalf("%s missing from the backup", p)
		}
	}
	if _, ok := want["/data/eph"]; ok {
		t.Fatal("the ephemeral is in the backup")
	}
	if out, errOut, code := groveCmd(t, bin, "inspect", "--encrypt-key-file", keyFile, file); code != 0 || !strings.Contains(out, "verified: checksum ok") {
		t.Fatalf("inspect: exit %d: %s %s", code, out, errOut)
	}

	// Damaged backups are refused and write nothing.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(raw)
	flipped[len(flipped)/2] ^= 0x40
	wrongKey := filepath.Join(dir, "wrong-key")
	_ = os.WriteFile(wrongKey, bytes.Repeat([]byte{1}, 32), 0o600)
	for name, tc := range map[string]struct {
		file    []byte
		keyFile string
		want    string
	}{
		"corrupt":   {flipped, keyFile, "corrupt"},
		"truncated": {raw[:len(raw)*2/3], keyFile, "truncated"},
		"wrong key": {raw, wrongKey, "wrong key"},
		"no key":    {raw, "", "encrypted"},
		"not one":   {[]byte("hello"), "", "not a Grove backup"},
	} {
		bad := filepath.Join(dir, "bad.grovebak")
		if err := os.WriteFile(bad, tc.file, 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, "restore-"+strings.ReplaceAll(name, " ", "-"))
		args := []string{"restore", "--from", bad, "--data-dir", target, "--name", "r1"}
		if tc.keyFile != "" {
			args = append(args, "--encrypt-key-file", tc.keyFile)
		}
		_, errOut, code := groveCmd(t, bin, args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Fatalf("%s: restore exit %d, stderr %q (want %q)", name, code, errOut, tc.want)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the refused restore left %s behind (%v)", name, target, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 4 { // key, wrong-key, the backup, bad: no scratch dir
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("%s: files left in %s: %v", name, dir, names)
		}
		inspectArgs := []string{"inspect", bad}
		if tc.keyFile != "" {
			inspectArgs = append(inspectArgs, "--encrypt-key-file", tc.keyFile)
		}
		if _, _, code := groveCmd(t, bin, inspectArgs...); code != 1 {
			t.Fatalf("%s: inspect passed a damaged file", name)
		}
	}

	t.Logf("%v: damaged backups refused", time.Since(began))
	// A second cluster restored from the file holds exactly its tree.
	c2 := newProcCluster(t)
	for _, name := range []string{"r1", "r2", "r3"} {
		out, errOut, code := groveCmd(t, bin, "restore", "--from", file, "--data-dir", filepath.Join(c2.base, name), "--name", name, "--encrypt-key-file", keyFile)
		if code != 0 {
			t.Fatalf("restore %s: exit %d: %s %s", name, code, out, errOut)
		}
	}
	rall := c2.startThree("r")
	r1, r2, r3 := rall[0], rall[1], rall[2]
	rs, err := client.Dial(ctx, []string{r1.client, r2.client, r3.client}, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rs.Close(context.Background()) }()
	if err := rs.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: restored cluster up", time.Since(began))
	got := walkTree(ctx, t, rs)
	t.Logf("%v: restored tree read", time.Since(began))
	if len(got) != len(want) {
		t.Fatalf("restored tree has %d znodes, the backup %d", len(got), len(want))
	}
	for p, d := range want {
		if g, ok := got[p]; !ok || g != d {
			t.Fatalf("restored %s = %q (present %v), backup has %q", p, g, ok, d)
		}
	}
	// The restored cluster takes writes whose zxids continue above the
	// backup's.
	_, st, err := rs.Create2(ctx, "/after-restore", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	if err != nil || st.Czxid <= index {
		t.Fatalf("write after restore: czxid %d, backup index %d: %v", st.Czxid, index, err)
	}
	c2.waitFor("the restored nodes to converge", 30*time.Second, func() bool { return c2.converged(rall...) })
}

// grove backup --every keeps the newest --keep backups and stops cleanly
// on SIGINT.
func TestScheduledBackupsKeepTheNewest(t *testing.T) {
	c := newProcCluster(t)
	n1 := c.add("n1", "--bootstrap-expect", "1")
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(n1) != nil })
	dir := t.TempDir()
	cmd := exec.Command(c.bin, "--output", "json", "backup", "--http", n1.httpAdr, "--every", "100ms", "--keep", "2", dir)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.waitFor("five scheduled backups", 30*time.Second, func() bool {
		return strings.Count(out.String(), `"file"`) >= 5
	})
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("backup --every after SIGINT: %v\n%s", err, out.String())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("%d files kept, want 2", len(entries))
	}
	for _, e := range entries {
		if _, err := backup.Inspect(mustOpen(t, filepath.Join(dir, e.Name())), nil, 1, nil); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}
