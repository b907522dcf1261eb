package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// target is one system measured through one client.
type target struct {
	name   string // grove, grove-zk, zookeeper, etcd
	system string
	dial   dialer
	// newCluster lays out a cluster under dir.
	newCluster func(dir string) (cluster, error)
}

// Run measures cfg.Systems and writes cfg.Out, cfg.SVG and cfg.Markdown.
// Every process it starts is killed and its temporary directory removed
// before it returns, also when ctx ends (Ctrl-C) or a step fails. A system
// that cannot be installed or started is skipped with a note in the
// report; a workload that fails is recorded with its error. The error is
// non-nil when ctx ended or the output files could not be written.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(logw, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	tmp, err := os.MkdirTemp("", "grove-bench-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	begin := time.Now()
	rep := newReport(cfg)
	for _, sys := range cfg.Systems {
		targets, note := targetsFor(ctx, sys, cfg, tmp, logf)
		if note != "" {
			logf("%s", note)
			rep.Notes = append(rep.Notes, note)
		}
		for _, t := range targets {
			rs, err := runTarget(ctx, cfg, t, filepath.Join(tmp, t.name), logf)
			rep.Results = append(rep.Results, rs...)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				logf("%s: %v", t.name, err)
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %v", t.name, firstLine(err)))
			}
		}
	}
	rep.WallSeconds = time.Since(begin).Seconds()
	rep.Versions = versions(cfg)
	return rep, rep.write(cfg)
}

// targetsFor returns the targets of a system, installing or building what
// it needs; a note says why a system is skipped.
func targetsFor(ctx context.Context, sys string, cfg Config, tmp string, logf func(string, ...any)) ([]target, string) {
	switch sys {
	case "grove":
		bin := cfg.GroveBin
		if bin == "" {
			logf("building ./cmd/grove")
			var err error
			if bin, err = buildGrove(ctx, tmp); err != nil {
				return nil, fmt.Sprintf("skipped grove: %v", err)
			}
		}
		mk := func(zkClients bool) func(string) (cluster, error) {
			return func(dir string) (cluster, error) { return newGroveCluster(bin, dir, zkClients) }
		}
		return []target{
			{name: "grove", system: sys, dial: dialGrove, newCluster: mk(false)},
			{name: "grove-zk", system: sys, dial: dialZK, newCluster: mk(true)},
		}, ""
	case "zookeeper":
		if err := ensureInstalled(ctx, zkJar, "zookeeper", logf); err != nil {
			return nil, fmt.Sprintf("skipped zookeeper: %v", err)
		}
		for _, jar := range append([]string{"/usr/bin/java"}, zkLogJars...) {
			if _, err := os.Stat(jar); err != nil {
				return nil, fmt.Sprintf("skipped zookeeper: %v", err)
			}
		}
		return []target{{name: sys, system: sys, dial: dialZK,
			newCluster: func(dir string) (cluster, error) { return newZKCluster(dir) }}}, ""
	case "etcd":
		if err := ensureInstalled(ctx, etcdBin, "etcd-server", logf); err != nil {
			return nil, fmt.Sprintf("skipped etcd: %v", err)
		}
		return []target{{name: sys, system: sys, dial: dialEtcd,
			newCluster: func(dir string) (cluster, error) { return newEtcdCluster(dir) }}}, ""
	}
	return nil, "unknown system " + sys
}

// runTarget starts the target's cluster, runs the workloads and stops it,
// removing its directory.
func runTarget(ctx context.Context, cfg Config, t target, dir string, logf func(string, ...any)) ([]Result, error) {
	defer func() { _ = os.RemoveAll(dir) }()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cl, err := t.newCluster(dir)
	if err != nil {
		return nil, err
	}
	logf("%s: starting three nodes", t.name)
	defer stopAll(cl)
	if err := cl.start(ctx); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	b := &bench{cfg: cfg, target: t.name, cl: cl, dial: t.dial, logf: logf}
	if err := b.setup(ctx); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	idle, err := b.runIdle(ctx)
	if err != nil {
		return nil, err
	}
	results := []Result{idle}
	for _, w := range cfg.Workloads {
		if w == wRecover && t.name == "grove-zk" {
			continue // the same servers as the grove target
		}
		for _, n := range b.counts(w) {
			rs, err := b.runQuiet(ctx, w, n)
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			if err != nil {
				logf("%s: %s (%d): %v", t.name, w, n, err)
				for _, p := range cl.nodes() {
					logf("--- %s log tail ---\n%s", p.name, p.tail(10))
				}
				rs = []Result{{Target: t.name, Workload: w, C: n, Error: firstLine(err)}}
				if rerr := b.recoverCluster(ctx); rerr != nil {
					return append(results, rs...), fmt.Errorf("cluster did not recover after %s: %w", w, rerr)
				}
			}
			for _, r := range rs {
				logf("%s", r.Summary())
			}
			results = append(results, rs...)
		}
	}
	return results, nil
}

// counts returns the concurrency levels workload w runs at (0: once).
func (b *bench) counts(w string) []int {
	switch w {
	case wLock:
		return b.cfg.LockWorkers
	case wFailover, wRecover, wScale, wSessions:
		return []int{0}
	}
	return b.cfg.Clients
}

// attempts is how often a workload is measured at most while other
// processes compete for the CPU.
const attempts = 3

// runQuiet runs a workload and, while other processes used more than
// noisy ms/s of CPU during it, measures it again, keeping the attempt
// measured under the least competing load.
func (b *bench) runQuiet(ctx context.Context, w string, n int) ([]Result, error) {
	var best []Result
	for i := range attempts {
		rs, err := b.runOne(ctx, w, n)
		if err != nil {
			return nil, err
		}
		if best == nil || maxOther(rs) < maxOther(best) {
			best = rs
		}
		if maxOther(best) <= noisy || i == attempts-1 {
			break
		}
		b.logf("%s: %s (%d): other processes used %.0f ms/s of CPU; measuring again", b.target, w, n, maxOther(rs))
	}
	return best, nil
}

func maxOther(rs []Result) float64 {
	m := 0.0
	for _, r := range rs {
		m = max(m, r.OtherCPUms)
	}
	return m
}

func (b *bench) runOne(ctx context.Context, w string, n int) ([]Result, error) {
	switch w {
	case wCreate:
		return b.runCreate(ctx, n)
	case wSet:
		return b.runSet(ctx, n)
	case wGet:
		return b.runGet(ctx, n)
	case wLock:
		return b.runLock(ctx, n)
	case wFailover:
		return b.runFailover(ctx)
	case wRecover:
		return b.runRecover(ctx)
	case wScale:
		return b.runScale(ctx)
	case wSessions:
		return b.runSessions(ctx)
	}
	return nil, fmt.Errorf("unknown workload %s", w)
}

// recoverCluster restarts nodes that are down after a failed workload and
// waits until the cluster is ready.
func (b *bench) recoverCluster(ctx context.Context) error {
	for _, p := range b.cl.nodes() {
		if !p.running() {
			if err := p.start(); err != nil {
				return err
			}
		}
	}
	return waitReady(ctx, b.cl)
}

func firstLine(err error) string {
	s := err.Error()
	if i := slices.Index([]byte(s), '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
