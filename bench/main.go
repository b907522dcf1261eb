// Command bench measures Grove against ZooKeeper and etcd on this machine.
// It starts a three-node loopback cluster of each system, runs the same
// workloads against each (Grove twice: through its native Go client and
// through its ZooKeeper-wire port with the ZooKeeper client), tears the
// clusters down, prints a table with Grove's ratios and writes a JSON
// file, an SVG chart of the ratios and, with -md, a Markdown report.
//
// # Usage
//
//	go run ./bench -systems grove,zookeeper,etcd -workloads all -md bench/RESULTS.md
//	go run ./bench -smoke   # a few seconds per workload, Grove only
//
// See bench/README.md for the workloads, flags and what is measured.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is what one run measures and where it writes.
type Config struct {
	Systems      []string      // grove, zookeeper, etcd
	Workloads    []string      // from allWorkloads
	Duration     time.Duration // measured time of each throughput workload
	Warmup       time.Duration // unmeasured time before it
	Clients      []int         // concurrent sessions C
	LockWorkers  []int         // contending workers W
	FailoverRuns int           // leader kills per target
	RecoverNodes int           // nodes loaded before the whole-cluster restart
	ScaleNodes   int           // znodes loaded between the scale workload's two set runs
	ScaleWide    int           // 1,000-byte-named children of the scale workload's wide parent
	Sessions     int           // idle sessions the sessions workload holds
	SessionsHold time.Duration // how long it holds them
	// SessionsPerProcess is how many idle sessions one helper process
	// holds (each within its open-file limit).
	SessionsPerProcess int
	// Combine, if set, names the JSON results of earlier runs: the command
	// prints their ratios side by side (RunsMarkdown) and measures nothing.
	Combine  []string
	Out      string    // JSON results
	SVG      string    // chart of Grove's ratios
	Markdown string    // Markdown report; empty writes none
	GroveBin string    // a prebuilt grove binary; empty builds ./cmd/grove
	Log      io.Writer // progress lines; nil discards them
}

// DefaultConfig is the full run.
func DefaultConfig() Config {
	return Config{
		Systems: []string{"grove", "zookeeper", "etcd"}, Workloads: allWorkloads,
		Duration: 10 * time.Second, Warmup: 2 * time.Second,
		Clients: []int{1, 16, 64}, LockWorkers: []int{8, 32},
		FailoverRuns: 3, RecoverNodes: 200_000, ScaleNodes: 200_000, ScaleWide: 1000,
		Sessions: 20_000, SessionsHold: 5 * time.Minute, SessionsPerProcess: 5_000,
		Out: "bench/results.json",
	}
}

// SmokeConfig is the CI run: Grove only, short workloads, few nodes.
func SmokeConfig() Config {
	c := DefaultConfig()
	c.Systems = []string{"grove"}
	c.Duration, c.Warmup = time.Second, 250*time.Millisecond
	c.Clients, c.LockWorkers = []int{1, 4}, []int{2, 4}
	c.FailoverRuns, c.RecoverNodes = 1, 2000
	c.ScaleNodes, c.ScaleWide = 2000, 100
	c.Out = filepath.Join(os.TempDir(), "grove-bench-smoke.json")
	return c
}

func main() {
	maybeHold() // a helper process of the sessions workload
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	cfg.Log = os.Stderr
	if len(cfg.Combine) > 0 {
		reps, err := loadReports(cfg.Combine)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Print(RunsMarkdown(reps))
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if rep != nil {
		fmt.Print(rep.Markdown(false))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (Config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	smoke := fs.Bool("smoke", false, "CI mode: Grove only, 1s per workload, C=1,4, W=2,4, 1 failover, 2,000 nodes to recover")
	systems := fs.String("systems", "", "systems to measure: grove,zookeeper,etcd (default all; -smoke: grove)")
	workloads := fs.String("workloads", "all", "workloads: all or a list of "+strings.Join(allWorkloads, ","))
	duration := fs.Duration("duration", 0, "measured time per workload and C (default 10s; -smoke: 1s)")
	warmup := fs.Duration("warmup", -1, "unmeasured warm-up before each (default 2s; -smoke: 250ms)")
	clients := fs.String("clients", "", `concurrent sessions, e.g. "1,16,64" (the default; -smoke: "1,4")`)
	lockers := fs.String("lock-workers", "", `lock workers, e.g. "8,32" (the default; -smoke: "2,4")`)
	failovers := fs.Int("failovers", 0, "leader kills per target (default 3; -smoke: 1)")
	nodes := fs.Int("recover-nodes", 0, "nodes loaded before the restart (default 200000; -smoke: 2000)")
	out := fs.String("out", "", "JSON results (default bench/results.json; -smoke: in the temp dir)")
	svg := fs.String("svg", "", "SVG chart (default: -out with .svg)")
	md := fs.String("md", "", "also write a Markdown report here (e.g. bench/RESULTS.md)")
	bin := fs.String("grove-bin", "", "use this grove binary instead of building ./cmd/grove")
	sessions := fs.Int("sessions", 0, "idle sessions held by the sessions workload (default 20000)")
	hold := fs.Duration("sessions-hold", 0, "how long the sessions workload holds them (default 5m)")
	perProc := fs.Int("sessions-per-process", 0, "idle sessions per helper process (default 5000)")
	combine := fs.String("combine", "", "print the ratios of these JSON results side by side (comma-separated) and measure nothing")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	cfg := DefaultConfig()
	if *smoke {
		cfg = SmokeConfig()
	}
	if *combine != "" {
		cfg.Combine = split(*combine)
	}
	if *perProc < 0 {
		return Config{}, fmt.Errorf("-sessions-per-process %d: want a positive count", *perProc)
	}
	if *perProc > 0 {
		cfg.SessionsPerProcess = *perProc
	}
	var err error
	if *systems != "" {
		cfg.Systems = split(*systems)
	}
	if *workloads != "all" {
		cfg.Workloads = split(*workloads)
	}
	if *clients != "" {
		cfg.Clients, err = ints(*clients)
	}
	if *lockers != "" && err == nil {
		cfg.LockWorkers, err = ints(*lockers)
	}
	if err != nil {
		return Config{}, err
	}
	if *duration > 0 {
		cfg.Duration = *duration
	}
	if *warmup >= 0 {
		cfg.Warmup = *warmup
	}
	if *failovers > 0 {
		cfg.FailoverRuns = *failovers
	}
	if *nodes > 0 {
		cfg.RecoverNodes = *nodes
	}
	if *sessions > 0 {
		cfg.Sessions = *sessions
	}
	if *hold > 0 {
		cfg.SessionsHold = *hold
	}
	if *out != "" {
		cfg.Out = *out
	}
	cfg.SVG, cfg.Markdown, cfg.GroveBin = *svg, *md, *bin
	return cfg, cfg.validate()
}

func split(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range split(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// validate checks the config and fills the SVG path.
func (c *Config) validate() error {
	for _, s := range c.Systems {
		if !slices.Contains([]string{"grove", "zookeeper", "etcd"}, s) {
			return fmt.Errorf("unknown system %q", s)
		}
	}
	for _, w := range c.Workloads {
		if !slices.Contains(allWorkloads, w) && w != wSessions {
			return fmt.Errorf("unknown workload %q (want %s, or %s)", w, strings.Join(allWorkloads, ","), wSessions)
		}
	}
	if len(c.Systems) == 0 || len(c.Workloads) == 0 || len(c.Clients) == 0 || len(c.LockWorkers) == 0 {
		return errors.New("nothing to measure")
	}
	if c.SVG == "" {
		c.SVG = strings.TrimSuffix(c.Out, ".json") + ".svg"
	}
	for _, p := range []string{c.Out, c.SVG, c.Markdown} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(filepath.Dir(p)); err != nil || !st.IsDir() {
			return fmt.Errorf("output directory of %s does not exist", p)
		}
	}
	return nil
}
