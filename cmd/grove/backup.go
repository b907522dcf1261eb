package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/grovekit/grove/backup"
	"github.com/grovekit/grove/internal/fsm"
	"github.com/grovekit/grove/server"
)

// backupClient fetches backup streams: no overall timeout (a large backup
// takes as long as it takes), but a bounded wait for the response.
var backupClient = &http.Client{Transport: adminTransport{&http.Transport{ResponseHeaderTimeout: 30 * time.Second}}}

// scheduledPrefix and scheduledSuffix name the files of grove backup --every.
const (
	scheduledPrefix = "grove-"
	scheduledSuffix = ".grovebak"
)

// newCmdFlags returns an interspersed flag set for a command (flags may
// follow its arguments) that reports errors instead of printing.
func newCmdFlags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses a command's flags; -h prints the command's usage and
// flags to help and returns errHelp; a bad flag is a usage error.
func parseFlags(fs *pflag.FlagSet, synopsis string, args []string, help io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(help, "usage: grove %s\n%s", synopsis, fs.FlagUsages())
			return errHelp
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}

// parseCmd parses a command's flags with GROVE_<FLAG> fallbacks.
func parseCmd(fs *pflag.FlagSet, synopsis string, args []string, help io.Writer) error {
	if err := parseFlags(fs, synopsis, args, help); err != nil {
		return err
	}
	return envFallback(fs)
}

// loadKeyFlag loads the key named by --encrypt-key-file, if given.
func loadKeyFlag(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return backup.LoadKey(path)
}

// runBackup implements grove backup: one backup to FILE, or with --every a
// backup into DIR at every interval, keeping the newest --keep.
func runBackup(ctx context.Context, g *globals, args []string) error {
	output, stdout, stderr := g.output, g.stdout, g.stderr
	var (
		gz, noProgress *bool
		keyFile        *string
		every          *time.Duration
		keep           *int
	)
	addr, parseArgs, resolve := httpFlags(g, "backup", "backup [flags] FILE   (with --every: DIR)", func(fs *pflag.FlagSet) {
		gz = fs.Bool("gzip", false, "compress the backup")
		keyFile = fs.String("encrypt-key-file", "", "encrypt with AES-256-GCM using this key file (32 bytes or 64 hex digits)")
		every = fs.Duration("every", 0, "take a backup at this interval into the directory given, until interrupted")
		keep = fs.Int("keep", 24, "with --every: how many backups to keep")
		noProgress = fs.Bool("no-progress", false, "no progress bar, even on a terminal")
	})
	rest, err := parseArgs(args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("usage: grove backup [--http ADDR] [--gzip] [--encrypt-key-file F] [--every D --keep N] FILE|DIR")
	}
	if *every < 0 || (*every > 0 && *keep < 1) {
		return usagef("backup: --every must be positive and --keep at least 1")
	}
	key, err := loadKeyFlag(*keyFile)
	if err != nil {
		return usageError{err}
	}
	if err := resolve(); err != nil {
		return err
	}
	opts := backup.Options{Gzip: *gz, Key: key}
	out := newOutput(stdout, output)
	showProgress := !*noProgress && output == "text" && isTerminal(stderr)
	if *every == 0 {
		res, err := takeBackup(ctx, *addr, rest[0], opts, progressTo(stderr, showProgress))
		if err != nil {
			return err
		}
		res.print(out)
		return out.flush()
	}
	return scheduleBackups(ctx, *addr, rest[0], opts, *every, *keep, out, stderr)
}

// backupResult is what one backup reports.
type backupResult struct {
	File       string    `json:"file"`
	Index      uint64    `json:"index"`
	ClusterID  string    `json:"cluster_id"`
	Znodes     uint64    `json:"znodes"`
	DataBytes  uint64    `json:"data_bytes"`
	Ephemerals uint64    `json:"ephemerals_left_out"`
	FileBytes  int64     `json:"file_bytes"`
	Seconds    float64   `json:"seconds"`
	Created    time.Time `json:"created"`
}

func (r backupResult) print(out *output) {
	if out.json {
		_ = out.doc(r)
		return
	}
	out.printf("%s: %d znodes (%d data bytes) at zxid %d of cluster %s, %d bytes in %.1fs\n",
		r.File, r.Znodes, r.DataBytes, r.Index, r.ClusterID, r.FileBytes, r.Seconds)
}

// takeBackup streams a backup from the node at addr into file: into a
// temporary file next to it, verified, synced, then renamed, so file is
// either a whole verified backup or untouched.
func takeBackup(ctx context.Context, addr, file string, opts backup.Options, progress func(int64)) (backupResult, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL(addr, "/v1/backup"), nil)
	if err != nil {
		return backupResult{}, usageError{fmt.Errorf("backup: --http %q: %w", addr, err)}
	}
	resp, err := backupClient.Do(req)
	if err != nil {
		return backupResult{}, fmt.Errorf("backup: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return backupResult{}, fmt.Errorf("backup: %s: %s %s", addr, resp.Status, strings.TrimSpace(string(body)))
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".partial-")
	if err != nil {
		return backupResult{}, fmt.Errorf("backup: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // a no-op once renamed
	h, totals, err := backup.Copy(tmp, resp.Body, nil, opts, progress)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return backupResult{}, fmt.Errorf("backup: %w", err)
	}
	st, err := os.Stat(tmp.Name())
	if err != nil {
		return backupResult{}, err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return backupResult{}, fmt.Errorf("backup: %w", err)
	}
	return backupResult{
		File: file, Index: h.Index, ClusterID: h.ClusterID, Znodes: totals.Znodes, DataBytes: totals.DataBytes,
		Ephemerals: totals.Ephemerals, FileBytes: st.Size(), Seconds: time.Since(start).Seconds(), Created: h.Created,
	}, nil
}

// scheduleBackups takes a backup into dir at every interval until ctx ends,
// keeping the newest keep files. A failed backup is reported and the
// schedule goes on.
func scheduleBackups(ctx context.Context, addr, dir string, opts backup.Options, every time.Duration, keep int, out *output, stderr io.Writer) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		name := scheduledPrefix + time.Now().UTC().Format("20060102T150405.000Z") + scheduledSuffix
		res, err := takeBackup(ctx, addr, filepath.Join(dir, name), opts, nil)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			fmt.Fprintln(stderr, "grove:", oneLine(err))
		default:
			res.print(out)
			if err := pruneBackups(dir, keep); err != nil {
				fmt.Fprintln(stderr, "grove:", oneLine(err))
			}
		}
		if err := out.flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// pruneBackups deletes all but the newest keep scheduled backups in dir
// (their names sort by time).
func pruneBackups(dir string, keep int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, scheduledPrefix) && strings.HasSuffix(n, scheduledSuffix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for len(names) > keep {
		if err := os.Remove(filepath.Join(dir, names[0])); err != nil {
			return err
		}
		names = names[1:]
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) // a file descriptor
}

// progressTo returns a progress callback drawing a byte counter on w, or
// nil.
func progressTo(w io.Writer, show bool) func(int64) {
	if !show {
		return nil
	}
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("backup"),
		progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond))
	return func(n int64) { _ = bar.Set64(n) }
}

// runRestore implements grove restore: seed a new node's data dir from a
// backup file, all or nothing.
func runRestore(args []string, output string, stdout, stderr io.Writer) error {
	fs := newCmdFlags("restore")
	from := fs.String("from", "", "the backup file (required)")
	dir := fs.String("data-dir", "", "the new node's data dir: must not exist or be empty (required)")
	name := fs.String("name", "", "the name the node will run under (for the report)")
	keyFile := fs.String("encrypt-key-file", "", "key of an encrypted backup")
	if err := parseCmd(fs, "restore --from FILE --data-dir DIR [--name N] [--encrypt-key-file F]", args, stdout); err != nil {
		return err
	}
	if *from == "" || *dir == "" || fs.NArg() != 0 {
		return usagef("usage: grove restore --from FILE --data-dir DIR [--name N] [--encrypt-key-file F]")
	}
	key, err := loadKeyFlag(*keyFile)
	if err != nil {
		return usageError{err}
	}
	f, err := os.Open(*from)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer func() { _ = f.Close() }()
	start := time.Now()
	var h backup.Header
	var totals backup.Totals
	id, err := server.Restore(*dir, func(scratch string, id uint64) error {
		var err error
		h, totals, err = backup.Seed(f, key, scratch, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore %s: %w", *from, err)
	}
	out := newOutput(stdout, output)
	res := struct {
		DataDir   string  `json:"data_dir"`
		Name      string  `json:"name,omitempty"`
		NodeID    string  `json:"node_id"`
		Index     uint64  `json:"index"`
		ClusterID string  `json:"from_cluster_id"`
		Znodes    uint64  `json:"znodes"`
		DataBytes uint64  `json:"data_bytes"`
		Seconds   float64 `json:"seconds"`
	}{*dir, *name, fmt.Sprintf("%x", id), h.Index, h.ClusterID, totals.Znodes, totals.DataBytes, time.Since(start).Seconds()}
	if out.json {
		_ = out.doc(res)
	} else {
		out.printf("restored %d znodes (%d data bytes) at zxid %d into %s (node id %s) in %.1fs\n",
			res.Znodes, res.DataBytes, res.Index, res.DataDir, res.NodeID, res.Seconds)
		out.printf("start every restored node with grove server --data-dir ... --bootstrap-expect N to form the new cluster\n")
	}
	return out.flush()
}

// runInspect implements grove inspect: verify a backup and summarise it.
func runInspect(args []string, output string, stdout, stderr io.Writer) error {
	fs := newCmdFlags("inspect")
	keyFile := fs.String("encrypt-key-file", "", "key of an encrypted backup")
	dump := fs.Bool("dump", false, "print every znode's path and data")
	top := fs.Int("top", 10, "how many of the largest subtrees to list")
	if err := parseCmd(fs, "inspect [--dump] [--encrypt-key-file F] FILE", args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 || *top < 0 {
		return usagef("usage: grove inspect [--dump] [--top N] [--encrypt-key-file F] FILE")
	}
	key, err := loadKeyFlag(*keyFile)
	if err != nil {
		return usageError{err}
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	defer func() { _ = f.Close() }()
	out := newOutput(stdout, output)
	var dumpFn func(string, fsm.NodeInfo) error
	if *dump {
		dumpFn = func(path string, info fsm.NodeInfo) error {
			if out.json {
				return out.doc(struct {
					Path string `json:"path"`
					dataFields
				}{path, encodeData(info.Data)})
			}
			out.printf("%s\t%q\n", path, info.Data)
			return nil
		}
	}
	sum, err := backup.Inspect(f, key, *top, dumpFn)
	if err != nil {
		_ = out.flush()
		return fmt.Errorf("inspect %s: %w", fs.Arg(0), err)
	}
	h := sum.Header
	if out.json {
		_ = out.doc(struct {
			Verified   bool             `json:"verified"`
			Header     backup.Header    `json:"header"`
			Znodes     uint64           `json:"znodes"`
			DataBytes  uint64           `json:"data_bytes"`
			Ephemerals uint64           `json:"ephemerals_left_out"`
			Containers int              `json:"containers"`
			TTL        int              `json:"ttl_nodes"`
			Sequential int              `json:"sequential"`
			Largest    []backup.Subtree `json:"largest_subtrees"`
		}{true, h, sum.Totals.Znodes, sum.Totals.DataBytes, sum.Totals.Ephemerals, sum.Containers, sum.TTL, sum.Sequential, sum.Largest})
		return out.flush()
	}
	out.printf("verified: checksum ok\nformat: %d (gzip %v, encrypted %v)\ncluster: %s\nzxid: %d\nmembers: %d\nsource node: %s\ncreated: %s\n",
		h.Format, h.Gzip, h.Encrypted, h.ClusterID, h.Index, h.Members, h.Source, h.Created.Format(time.RFC3339))
	out.printf("znodes: %d\ndata bytes: %d\nephemerals left out: %d\ncontainers: %d\nttl nodes: %d\nsequential: %d\n",
		sum.Totals.Znodes, sum.Totals.DataBytes, sum.Totals.Ephemerals, sum.Containers, sum.TTL, sum.Sequential)
	if len(sum.Largest) > 0 {
		out.printf("largest subtrees:\n")
		for _, s := range sum.Largest {
			out.printf("  %8d  %s\n", s.Znodes, s.Path)
		}
	}
	return out.flush()
}
