package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The sessions workload holds its idle sessions in helper processes (this
// binary again, started with holdEnv set), each within its open-file
// limit: one process may not hold 20,000 connections where the hard limit
// is 20,000 and cannot be raised.
//
// The protocol, on the helper's stdin and stdout, one line each:
//
//	helper → "READY <n>" once n sessions are open, or "ERROR <text>"
//	parent closes the helper's stdin when the hold is over
//	helper → "EXPIRED <k>": how many of them had expired; it then closes
//	them and exits 0
const (
	holdEnv      = "GROVE_BENCH_HOLD"       // sessions this helper opens
	holdAddrsEnv = "GROVE_BENCH_HOLD_ADDRS" // comma-separated; session i dials addrs[(first+i) % len]
	holdFirstEnv = "GROVE_BENCH_HOLD_FIRST" // the index of this helper's first session overall
)

// maybeHold runs this process as a session holder if holdEnv is set, and
// then exits; otherwise it returns.
func maybeHold() {
	if os.Getenv(holdEnv) == "" {
		return
	}
	if err := holdSessions(context.Background(), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stdout, "ERROR", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
	os.Exit(0)
}

// holdSessions is a holder's body: it opens the sessions, reports, waits
// for in to close, reports how many expired, and closes them.
func holdSessions(ctx context.Context, in io.Reader, out io.Writer) error {
	n, err := strconv.Atoi(os.Getenv(holdEnv))
	if err != nil || n <= 0 {
		return fmt.Errorf("%s=%q: want a positive count", holdEnv, os.Getenv(holdEnv))
	}
	first, err := strconv.Atoi(os.Getenv(holdFirstEnv))
	if err != nil || first < 0 {
		return fmt.Errorf("%s=%q: want an index", holdFirstEnv, os.Getenv(holdFirstEnv))
	}
	addrs := strings.Split(os.Getenv(holdAddrsEnv), ",")
	if len(addrs) == 0 || addrs[0] == "" {
		return fmt.Errorf("%s is empty", holdAddrsEnv)
	}
	if err := raiseFileLimit(uint64(n) + 256); err != nil {
		return err
	}
	idle, err := dialIdle(ctx, n, func(i int) []string { return []string{addrs[(first+i)%len(addrs)]} })
	defer closeAll(idle)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(out, "READY", len(idle)); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, in) // until the parent closes it
	expired := 0
	for _, c := range idle {
		if e, ok := c.(expirer); ok && e.Expired() {
			expired++
		}
	}
	_, err = fmt.Fprintln(out, "EXPIRED", expired)
	return err
}

// dialIdle opens n Grove sessions, 128 at a time, session i to addrs(i).
// On error it returns what it opened, for the caller to close.
func dialIdle(ctx context.Context, n int, addrs func(i int) []string) ([]Conn, error) {
	idle := make([]Conn, n)
	var mu sync.Mutex
	var dialErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 128)
	for i := range idle {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			c, err := dialGrove(dctx, addrs(i))
			mu.Lock()
			defer mu.Unlock()
			idle[i] = c
			if err != nil && dialErr == nil {
				dialErr = fmt.Errorf("idle session %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	return idle, dialErr
}

// running lists the pids of the helpers now holding sessions: their CPU
// time is the clients' (usageOf), not other processes'.
var running struct {
	sync.Mutex
	pids []int
}

// holdersCPU returns the CPU time the running helpers have used.
func holdersCPU() time.Duration {
	running.Lock()
	defer running.Unlock()
	var total time.Duration
	for _, pid := range running.pids {
		if d, err := cpuTime(pid); err == nil {
			total += d
		}
	}
	return total
}

// holder is a running helper process, seen from the parent.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// startHolders starts the helpers for n sessions spread over addrs, at
// most per in each, and waits until every one has its sessions open. On
// error it stops those it started.
func startHolders(ctx context.Context, n, per int, addrs []string) ([]*holder, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var hs []*holder
	for first := 0; first < n; first += per {
		count := min(per, n-first)
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(),
			holdEnv+"="+strconv.Itoa(count),
			holdFirstEnv+"="+strconv.Itoa(first),
			holdAddrsEnv+"="+strings.Join(addrs, ","))
		cmd.Stderr = os.Stderr
		// The helper dies with the harness, like the servers.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			_, _ = stopHolders(hs) // the start error is the one to report
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			_, _ = stopHolders(hs) // the start error is the one to report
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			_, _ = stopHolders(hs) // the start error is the one to report
			return nil, fmt.Errorf("start session holder: %w", err)
		}
		hs = append(hs, &holder{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)})
		running.Lock()
		running.pids = append(running.pids, cmd.Process.Pid)
		running.Unlock()
	}
	for _, h := range hs {
		if _, err := h.expect("READY"); err != nil {
			_, _ = stopHolders(hs) // the start error is the one to report
			return nil, err
		}
	}
	return hs, nil
}

// expect reads the helper's next line, which must start with word, and
// returns the number after it.
func (h *holder) expect(word string) (int, error) {
	if !h.lines.Scan() {
		return 0, fmt.Errorf("session holder exited before %s: %v", word, h.lines.Err())
	}
	line := h.lines.Text()
	rest, ok := strings.CutPrefix(line, word+" ")
	if !ok {
		return 0, fmt.Errorf("session holder: %s", line)
	}
	return strconv.Atoi(rest)
}

// stopHolders ends the hold and returns how many sessions had expired in
// all helpers.
func stopHolders(hs []*holder) (int, error) {
	running.Lock()
	running.pids = nil
	running.Unlock()
	var errs []error
	expired := 0
	for _, h := range hs {
		_ = h.stdin.Close()
	}
	for _, h := range hs {
		k, err := h.expect("EXPIRED")
		expired += k
		errs = append(errs, err)
		if err != nil {
			_ = h.cmd.Process.Kill()
		}
		if err := h.cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("session holder: %w", err))
		}
	}
	return expired, errors.Join(errs...)
}
