package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
)

// TestMeasureBackupRestoreRate measures backup and restore of 1 GB of znode
// data through the CLI against a real server process (fsync on), for
// docs/performance.md. It is a measurement, not a check, and takes minutes:
// it runs only with GROVE_MEASURE_BACKUP=1 (size in GB via
// GROVE_MEASURE_BACKUP_GB, default 1).
func TestMeasureBackupRestoreRate(t *testing.T) {
	if os.Getenv("GROVE_MEASURE_BACKUP") != "1" {
		t.Skip("a measurement: set GROVE_MEASURE_BACKUP=1 to run it")
	}
	gb := 1.0
	if v := os.Getenv("GROVE_MEASURE_BACKUP_GB"); v != "" {
		if _, err := fmt.Sscan(v, &gb); err != nil {
			t.Fatal(err)
		}
	}
	const value = 16 << 10
	count := int(gb * (1 << 30) / value)
	c := &procCluster{t: t, bin: buildGroveBin(t, false), base: t.TempDir(), procs: map[string]*proc{}}
	n1 := c.add("n1", "--bootstrap-expect", "1")
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader(n1) != nil })
	ctx := t.Context()
	s, err := client.Dial(ctx, []string{n1.client}, client.WithTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(context.Background()) }()
	for _, p := range []string{"/bulk"} {
		if _, err := s.Create(ctx, p, nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			data := make([]byte, value)
			for i := w; i < count; i += 64 {
				_, _ = rand.Read(data)
				if _, err := s.Create(ctx, fmt.Sprintf("/bulk/%03d/n%07d", i%100, i), data, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
					if grove.ErrorCode(err) == grove.CodeNoNode {
						_, _ = s.Create(ctx, fmt.Sprintf("/bulk/%03d", i%100), nil, grove.ModePersistent, grove.OpenACLUnsafe)
						i -= 64
						continue
					}
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("loaded %d znodes of %d bytes (%.2f GB) in %v", count, value, gb, time.Since(start).Round(time.Millisecond))
	dir := t.TempDir()
	for _, mode := range [][]string{{}, {"--gzip"}} {
		file := filepath.Join(dir, "b"+strings.Join(mode, ""))
		start := time.Now()
		out, errOut, code := groveCmd(t, c.bin, append(append([]string{"backup", "--http", n1.httpAdr}, mode...), file)...)
		if code != 0 {
			t.Fatalf("backup %v: %s %s", mode, out, errOut)
		}
		el := time.Since(start)
		st, _ := os.Stat(file)
		t.Logf("backup %v: %v, %.0f MB/s of data, file %d MB: %s", mode, el.Round(time.Millisecond), gb*1024/el.Seconds(), st.Size()>>20, strings.TrimSpace(out))
		start = time.Now()
		out, errOut, code = groveCmd(t, c.bin, "restore", "--from", file, "--data-dir", filepath.Join(dir, "r"+strings.Join(mode, "")))
		if code != 0 {
			t.Fatalf("restore %v: %s %s", mode, out, errOut)
		}
		el = time.Since(start)
		t.Logf("restore %v: %v, %.0f MB/s of data: %s", mode, el.Round(time.Millisecond), gb*1024/el.Seconds(), strings.TrimSpace(out))
		start = time.Now()
		if out, errOut, code := groveCmd(t, c.bin, "inspect", file); code != 0 {
			t.Fatalf("inspect: %s %s", out, errOut)
		}
		t.Logf("inspect %v: %v", mode, time.Since(start).Round(time.Millisecond))
	}
}
