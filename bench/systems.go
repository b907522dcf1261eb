package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// cluster is a three-node cluster of one system on loopback. Its methods
// are called from the orchestrating goroutine only.
type cluster interface {
	// start starts every node and returns once a leader serves clients.
	start(ctx context.Context) error
	// nodes returns the server processes; node i serves addrs()[i].
	nodes() []*proc
	// addrs returns the client addresses (host:port) of the nodes, for the
	// client the target measures with.
	addrs() []string
	// dataDir returns node i's data directory.
	dataDir(i int) string
	// ready returns nil when every running node serves and one of them is
	// the leader.
	ready(ctx context.Context) error
	// leader returns the index of the node that leads.
	leader(ctx context.Context) (int, error)
}

// startTimeout bounds how long a cluster (or a restarted node) may take to
// serve again.
const startTimeout = 90 * time.Second

// startAll starts every node of c and waits until the cluster is ready.
func startAll(ctx context.Context, c cluster) error {
	for _, p := range c.nodes() {
		if err := p.start(); err != nil {
			stopAll(c)
			return err
		}
	}
	return waitReady(ctx, c)
}

// waitReady polls c.ready; on timeout the error carries the nodes' log
// tails.
func waitReady(ctx context.Context, c cluster) error {
	err := poll(ctx, startTimeout, 20*time.Millisecond, "cluster ready", func(ctx context.Context) error {
		for _, p := range c.nodes() {
			if p.cmd != nil && !p.running() {
				return fmt.Errorf("%s exited", p.name)
			}
		}
		return c.ready(ctx)
	})
	if err != nil {
		var b strings.Builder
		for _, p := range c.nodes() {
			fmt.Fprintf(&b, "\n--- %s (%s) ---\n%s", p.name, p.log, p.tail(15))
		}
		return fmt.Errorf("%w%s", err, b.String())
	}
	return nil
}

// stopAll SIGKILLs every node of c and waits for them to exit.
func stopAll(c cluster) {
	for _, p := range c.nodes() {
		p.kill()
	}
}

// serverPIDs returns the process ids of the running nodes.
func serverPIDs(c cluster) []int {
	var pids []int
	for _, p := range c.nodes() {
		if pid := p.pid(); pid != 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// serverCPU returns the CPU time used so far by all running nodes.
func serverCPU(c cluster) time.Duration {
	var total time.Duration
	for _, pid := range serverPIDs(c) {
		if d, err := cpuTime(pid); err == nil {
			total += d
		}
	}
	return total
}

// usage is a snapshot of CPU time used so far: by the cluster's servers,
// by this process (the clients), by kernel threads and by the machine.
type usage struct{ servers, self, kernel, machine time.Duration }

func usageOf(c cluster) (usage, error) {
	self, err1 := cpuTime(os.Getpid())
	self += holdersCPU() // the sessions workload's clients live there too
	machine, err2 := machineBusy()
	return usage{servers: serverCPU(c), self: self, kernel: kernelThreadsCPU(), machine: machine}, errors.Join(err1, err2)
}

// others is the CPU time used between u0 and u by user processes that are
// neither the servers nor this one: other jobs sharing the machine.
// Interrupt work that landed while a core was idle counts here too (the
// tick-based accounting charges it to no process), so a few tens of ms/s
// are noise.
func (u usage) others(u0 usage) time.Duration {
	return max(0, (u.machine-u0.machine)-(u.servers-u0.servers)-(u.self-u0.self)-(u.kernel-u0.kernel))
}

// statusClient is the HTTP client for status probes.
var statusClient = &http.Client{Timeout: 2 * time.Second}

// oneLeader returns the index of the only node for which isLeader holds
// among the running nodes, requiring every running node to answer.
func oneLeader(ctx context.Context, c cluster, isLeader func(ctx context.Context, i int) (bool, error)) (int, error) {
	leader := -1
	for i, p := range c.nodes() {
		if !p.running() {
			continue
		}
		ok, err := isLeader(ctx, i)
		if err != nil {
			return -1, fmt.Errorf("%s: %w", p.name, err)
		}
		if ok {
			if leader >= 0 {
				return -1, errors.New("two nodes say they lead")
			}
			leader = i
		}
	}
	if leader < 0 {
		return -1, errors.New("no leader")
	}
	return leader, nil
}

// findLeader polls c.leader until one node leads.
func findLeader(ctx context.Context, c cluster) (int, error) {
	leader := -1
	err := poll(ctx, startTimeout, 20*time.Millisecond, "find leader", func(ctx context.Context) error {
		i, err := c.leader(ctx)
		leader = i
		return err
	})
	return leader, err
}

// ensureInstalled checks that bin exists, installing the Debian package
// pkg when it does not (apt-get update first if the install fails). The
// error says why the system cannot be measured.
func ensureInstalled(ctx context.Context, bin, pkg string, log func(string, ...any)) error {
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	log("%s not found; installing the Debian package %s", bin, pkg)
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install %s: %w: %s", pkg, err, lastLine(out))
		}
		return nil
	}
	if err := install(); err != nil {
		if out, uerr := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
			return fmt.Errorf("%w; apt-get update: %v: %s", err, uerr, lastLine(out))
		}
		if err := install(); err != nil {
			return err
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("package %s installed but %s is missing", pkg, bin)
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// writeFile writes data to dir/name, creating dir.
func writeFile(dir, name, data string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
}
