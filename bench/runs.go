package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// The runs table puts the ratios of several full runs side by side, so a
// report shows the spread between runs and not one best run:
//
//	go run ./bench -combine bench/runs/1.json,bench/runs/2.json,bench/runs/3.json
//
// prints it as Markdown.

// loadReports reads the JSON results of several runs.
func loadReports(paths []string) ([]*Report, error) {
	var reps []*Report
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		reps = append(reps, &r)
	}
	return reps, nil
}

// runsRow is one line of the runs table: a figure of each run.
type runsRow struct {
	label string
	bound string                 // what the issue asks of it
	cell  func(r *Report) string // "" when the run lacks it
}

// ratioCell is Grove's ops/s ÷ other's at workload and c, for the native
// client and the ZooKeeper-wire port, or the p99 ratio.
func ratioCell(other, workload string, c int, p99 bool) func(r *Report) string {
	return func(r *Report) string {
		var parts []string
		for _, target := range []string{"grove", "grove-zk"} {
			a, ok1 := r.find(target, workload, c)
			b, ok2 := r.find(other, workload, c)
			switch {
			case !ok1 || !ok2:
				parts = append(parts, "–")
			case p99 && b.P99Ms > 0:
				parts = append(parts, fmt.Sprintf("%.2f", a.P99Ms/b.P99Ms))
			case !p99 && b.OpsPerSec > 0:
				parts = append(parts, fmt.Sprintf("%.2f", a.OpsPerSec/b.OpsPerSec))
			default:
				parts = append(parts, "–")
			}
		}
		return strings.Join(parts, " / ")
	}
}

// scaleCell is Grove's full-tree set rate ÷ its empty-tree rate at c.
func scaleCell(c int) func(r *Report) string {
	return func(r *Report) string {
		var parts []string
		for _, target := range []string{"grove", "grove-zk"} {
			full, ok1 := r.find(target, wScaleSetFull, c)
			empty, ok2 := r.find(target, wScaleSetEmpty, c)
			if !ok1 || !ok2 || empty.OpsPerSec == 0 {
				parts = append(parts, "–")
				continue
			}
			parts = append(parts, fmt.Sprintf("%.2f", full.OpsPerSec/empty.OpsPerSec))
		}
		return strings.Join(parts, " / ")
	}
}

// failoverCell is the median of the longest write gaps per leader kill.
func failoverCell(target string) func(r *Report) string {
	return func(r *Report) string {
		f, ok := r.find(target, wFailover, 1)
		if !ok || len(f.GapsS) == 0 {
			return ""
		}
		g := slices.Sorted(slices.Values(f.GapsS))
		return fmt.Sprintf("%.2f s (max %.2f)", g[len(g)/2], g[len(g)-1])
	}
}

// restartCell is the whole-cluster restart time to a first read.
func restartCell(target string) func(r *Report) string {
	return func(r *Report) string {
		x, ok := r.find(target, wRecover, 0)
		if !ok {
			return ""
		}
		return fmt.Sprintf("%.2f s", x.RestartS)
	}
}

// RunsMarkdown renders the runs table for reps.
func RunsMarkdown(reps []*Report) string {
	var rows []runsRow
	add := func(label, bound string, cell func(*Report) string) {
		rows = append(rows, runsRow{label, bound, cell})
	}
	for _, w := range []string{wCreate, wSet} {
		for _, c := range []int{1, 16, 64} {
			add(fmt.Sprintf("%s C=%d ÷ ZooKeeper", w, c), "≥ 1.0", ratioCell("zookeeper", w, c, false))
		}
	}
	for _, w := range []string{wCreate, wSet} {
		add(fmt.Sprintf("%s p99 C=64 ÷ ZooKeeper's", w), "≤ 1.0", ratioCell("zookeeper", w, 64, true))
	}
	for _, c := range []int{8, 32} {
		add(fmt.Sprintf("lock W=%d ÷ ZooKeeper", c), "≥ 1.0", ratioCell("zookeeper", wLock, c, false))
	}
	for _, c := range []int{1, 16} {
		add(fmt.Sprintf("get C=%d ÷ ZooKeeper", c), "≥ 1.5", ratioCell("zookeeper", wGet, c, false))
	}
	for _, c := range []int{1, 16, 64} {
		add(fmt.Sprintf("get-lin C=%d ÷ ZooKeeper sync+get", c), "≥ 1.0", ratioCell("zookeeper", wGetLin, c, false))
	}
	for _, c := range scaleClients {
		add(fmt.Sprintf("set C=%d, full tree ÷ empty tree (Grove)", c), "≥ 0.90", scaleCell(c))
	}
	add("scale-wide C=1 (create+delete, wide parent) ÷ ZooKeeper", "≥ 1.0", ratioCell("zookeeper", wScaleWide, 1, false))
	for _, c := range []int{1, 16, 64} {
		add(fmt.Sprintf("set C=%d ÷ etcd", c), "", ratioCell("etcd", wSet, c, false))
	}
	add("failover, native client: median gap", "≤ 0.5 s", failoverCell("grove"))
	add("failover, ZooKeeper wire: median gap", "≤ 0.5 s", failoverCell("grove-zk"))
	add("failover, ZooKeeper", "", failoverCell("zookeeper"))
	add("restart with the loaded tree → first read", "≤ 1 s", restartCell("grove"))
	add("restart, ZooKeeper", "", restartCell("zookeeper"))

	var b strings.Builder
	b.WriteString("| figure (ratios: native client / ZooKeeper wire) | asked |")
	for i, r := range reps {
		fmt.Fprintf(&b, " run %d (%s) |", i+1, r.Date)
	}
	b.WriteString("\n|---|---|")
	for range reps {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s | %s |", row.label, row.bound)
		for _, r := range reps {
			v := row.cell(r)
			if v == "" {
				v = "–"
			}
			fmt.Fprintf(&b, " %s |", v)
		}
		b.WriteString("\n")
	}
	return b.String()
}
