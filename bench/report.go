package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Result is one measurement of one target.
type Result struct {
	Target   string `json:"target"`   // grove, grove-zk, zookeeper, etcd
	Workload string `json:"workload"` // create, set, get, get-lin, lock, failover, recover
	// C is the number of concurrent sessions (lock: contending workers W).
	C int `json:"c,omitempty"`

	Ops        int64   `json:"ops,omitempty"`         // operations (lock: acquisitions) in the window
	Seconds    float64 `json:"seconds,omitempty"`     // the measured window
	OpsPerSec  float64 `json:"ops_per_sec,omitempty"` // lock: handoffs/s
	P50Ms      float64 `json:"p50_ms,omitempty"`      // latency (lock: of Lock)
	P99Ms      float64 `json:"p99_ms,omitempty"`
	P999Ms     float64 `json:"p999_ms,omitempty"`
	CPUPerOpUs float64 `json:"server_cpu_us_per_op,omitempty"` // utime+stime of the 3 servers ÷ Ops
	// ClientCPUPerOpUs is the harness's own CPU time (the clients) ÷ Ops.
	ClientCPUPerOpUs float64 `json:"client_cpu_us_per_op,omitempty"`
	// OtherCPUms is the CPU time per second used by every other process
	// on the machine during the window: other jobs competing for the cores.
	OtherCPUms float64 `json:"other_cpu_ms_per_s,omitempty"`

	GapsS   []float64 `json:"failover_gaps_s,omitempty"` // longest write gap per leader kill
	MaxGapS float64   `json:"failover_max_gap_s,omitempty"`

	Nodes        int     `json:"recover_nodes,omitempty"`
	LoadSeconds  float64 `json:"recover_load_s,omitempty"`
	RestartS     float64 `json:"recover_restart_s,omitempty"` // start of the processes → first read of the last node
	DataDirBytes int64   `json:"data_dir_bytes,omitempty"`    // largest node's, after the load
	RSSBytes     int64   `json:"rss_bytes,omitempty"`         // largest server's VmRSS, after the load

	IdleCPUms float64 `json:"idle_server_cpu_ms_per_s,omitempty"` // the 3 servers with no client

	// Sessions is how many idle sessions were held (sessions-held); Expired
	// how many of them expired (-1: the client cannot tell); LeaderChanged
	// whether the leader changed while they were held.
	Sessions      int  `json:"sessions,omitempty"`
	Expired       int  `json:"sessions_expired,omitempty"`
	LeaderChanged bool `json:"leader_changed,omitempty"`
	// LeaderIdleCPUms is the leader's CPU time per second over 10 s with no
	// writer: with the idle sessions held (sessions-held) or after they
	// closed (sessions-baseline).
	LeaderIdleCPUms float64 `json:"leader_idle_cpu_ms_per_s,omitempty"`

	Error string `json:"error,omitempty"`
}

// Summary is a one-line description of r.
func (r Result) Summary() string {
	switch {
	case r.Error != "":
		return fmt.Sprintf("%s %s C=%d: error: %s", r.Target, r.Workload, r.C, r.Error)
	case r.Workload == wSessionsHeld:
		return fmt.Sprintf("%s %s C=%d: %.0f ops/s, p99 %.2fms, server CPU %.0f µs/op, with %d idle sessions held: %d expired, leader changed: %v; leader CPU with no writer %.0f ms/s",
			r.Target, r.Workload, r.C, r.OpsPerSec, r.P99Ms, r.CPUPerOpUs, r.Sessions, r.Expired, r.LeaderChanged, r.LeaderIdleCPUms)
	case r.Workload == wSessionsBaseline:
		return fmt.Sprintf("%s %s C=%d: %.0f ops/s, p99 %.2fms, server CPU %.0f µs/op, no idle sessions; leader CPU with no writer %.0f ms/s",
			r.Target, r.Workload, r.C, r.OpsPerSec, r.P99Ms, r.CPUPerOpUs, r.LeaderIdleCPUms)
	case r.Workload == wIdle:
		return fmt.Sprintf("%s idle: servers use %.0f ms of CPU per second (other processes %.0f ms/s)", r.Target, r.IdleCPUms, r.OtherCPUms)
	case r.Workload == wFailover:
		return fmt.Sprintf("%s failover: longest write gap %.3fs %v", r.Target, r.MaxGapS, r.GapsS)
	case r.Workload == wRecover:
		return fmt.Sprintf("%s recover: %d nodes loaded in %.1fs; data dir %.0f MiB, RSS %.0f MiB; restart to first read %.2fs",
			r.Target, r.Nodes, r.LoadSeconds, mib(r.DataDirBytes), mib(r.RSSBytes), r.RestartS)
	}
	return fmt.Sprintf("%s %s C=%d: %.0f ops/s, p50 %.2f p99 %.2f p999 %.2f ms, CPU µs/op: servers %.0f, client %.0f; other processes %.0f ms/s",
		r.Target, r.Workload, r.C, r.OpsPerSec, r.P50Ms, r.P99Ms, r.P999Ms, r.CPUPerOpUs, r.ClientCPUPerOpUs, r.OtherCPUms)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// Report is the outcome of one run.
type Report struct {
	Date        string            `json:"date"`
	Commit      string            `json:"commit"`
	Machine     map[string]string `json:"machine"`
	Versions    map[string]string `json:"versions"`
	Config      map[string]string `json:"config"`
	WallSeconds float64           `json:"wall_seconds"`
	Results     []Result          `json:"results"`
	Notes       []string          `json:"notes,omitempty"`
}

func newReport(cfg Config) *Report {
	r := &Report{
		Date:   time.Now().UTC().Format("2006-01-02 15:04 MST"),
		Commit: command("git", "rev-parse", "--short", "HEAD"),
		Machine: map[string]string{
			"nproc":   fmt.Sprint(runtime.NumCPU()),
			"free -g": command("free", "-g"),
			"disk":    command("df", "-h", "--output=source,fstype,size", os.TempDir()),
			"go":      runtime.Version(),
		},
		Config: map[string]string{
			"duration": cfg.Duration.String(), "warmup": cfg.Warmup.String(),
			"clients": fmt.Sprint(cfg.Clients), "lock_workers": fmt.Sprint(cfg.LockWorkers),
			"failovers": fmt.Sprint(cfg.FailoverRuns), "recover_nodes": fmt.Sprint(cfg.RecoverNodes),
			"value_bytes": fmt.Sprint(len(value)), "session_timeout": sessionTimeout.String(),
		},
	}
	if command("git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no") != "" {
		r.Commit += " (with uncommitted changes)"
	}
	return r
}

// command runs a read-only command and returns its trimmed output, or "?"
// when it fails.
func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// versions returns the version of every system the run used.
func versions(cfg Config) map[string]string {
	v := map[string]string{}
	for _, s := range cfg.Systems {
		switch s {
		case "zookeeper":
			v[s] = "Debian zookeeper " + command("dpkg-query", "-W", "-f", "${Version}", "zookeeper")
		case "etcd":
			v[s] = "Debian etcd-server " + command("dpkg-query", "-W", "-f", "${Version}", "etcd-server")
		case "grove":
			v[s] = "./cmd/grove of the work tree at the start"
		}
	}
	return v
}

// write writes the JSON, the SVG and, if asked for, the Markdown report.
// analysisFile, next to the Markdown report, is appended to it.
const analysisFile = "ANALYSIS.md"

func (r *Report) write(cfg Config) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.Out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(cfg.SVG, []byte(r.SVG()), 0o644); err != nil {
		return err
	}
	if cfg.Markdown == "" {
		return nil
	}
	md := r.Markdown(true)
	if rel, err := filepath.Rel(filepath.Dir(cfg.Markdown), cfg.SVG); err == nil {
		md = strings.Replace(md, "## Goals", fmt.Sprintf("![Grove's ratios](%s)\n\n## Goals", rel), 1)
	}
	// The hand-written analysis of unmet goals (why, with profile
	// evidence, and what would close them) lives next to the report and is
	// carried into every regenerated one.
	if a, err := os.ReadFile(filepath.Join(filepath.Dir(cfg.Markdown), analysisFile)); err == nil {
		md = strings.TrimRight(md, "\n") + "\n\n" + string(a)
	}
	return os.WriteFile(cfg.Markdown, []byte(md), 0o644)
}

// targetOrder is the column order of the tables.
var targetOrder = []string{"grove", "grove-zk", "zookeeper", "etcd"}

// find returns the result of target for workload at c.
func (r *Report) find(target, workload string, c int) (Result, bool) {
	for _, x := range r.Results {
		if x.Target == target && x.Workload == workload && x.C == c && x.Error == "" {
			return x, true
		}
	}
	return Result{}, false
}

// ratio returns target's ops/s ÷ other's at workload and c.
func (r *Report) ratio(target, other, workload string, c int) (float64, bool) {
	a, ok1 := r.find(target, workload, c)
	b, ok2 := r.find(other, workload, c)
	if !ok1 || !ok2 || b.OpsPerSec == 0 {
		return 0, false
	}
	return a.OpsPerSec / b.OpsPerSec, true
}

// throughput returns the (workload, C) pairs measured, in table order.
func (r *Report) throughput() [][2]any {
	var keys [][2]any
	for _, w := range []string{wCreate, wSet, wGet, wGetLin, wLock, wScaleSetEmpty, wScaleSetFull, wScaleWide, wSessionsHeld, wSessionsBaseline} {
		var cs []int
		for _, x := range r.Results {
			if x.Workload == w && x.C > 0 && !slices.Contains(cs, x.C) {
				cs = append(cs, x.C)
			}
		}
		slices.Sort(cs)
		for _, c := range cs {
			keys = append(keys, [2]any{w, c})
		}
	}
	return keys
}

func sortResults(rs []Result) {
	slices.SortStableFunc(rs, func(a, b Result) int {
		return cmp.Compare(slices.Index(targetOrder, a.Target), slices.Index(targetOrder, b.Target))
	})
}
