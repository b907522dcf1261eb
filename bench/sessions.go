package main

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// The sessions workload (not part of "all": it holds tens of thousands of
// connections for minutes): a C = 16 set writer runs for -sessions-hold
// while -sessions idle sessions, spread over the three servers, stay
// connected with nothing but their keep-alives; then the same writer runs
// alone for -duration. It reports both writer rows
// (sessions-held, sessions-baseline), how many idle sessions expired, and
// whether the leader changed. It runs with the native Grove client only
// (the one that can tell its session expired).
const (
	wSessions         = "sessions"
	wSessionsHeld     = "sessions-held"
	wSessionsBaseline = "sessions-baseline"
)

// sessionsWriters is the writer's concurrency.
const sessionsWriters = 16

// expirer is a Conn that can tell its session expired.
type expirer interface{ Expired() bool }

func (b *bench) runSessions(ctx context.Context) ([]Result, error) {
	if b.target != "grove" {
		b.logf("%s: sessions: measured with the native Grove client only", b.target)
		return nil, nil
	}
	hs, err := startHolders(ctx, b.cfg.Sessions, b.cfg.SessionsPerProcess, b.cl.addrs())
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, _ = stopHolders(hs)
		}
	}()
	b.logf("%s: sessions: %d idle sessions open in %d helper processes", b.target, b.cfg.Sessions, len(hs))
	before, err := findLeader(ctx, b.cl)
	if err != nil {
		return nil, err
	}
	leaderHeld, err := b.nodeCPU(ctx, before)
	if err != nil {
		return nil, err
	}
	held := *b
	held.cfg.Duration = b.cfg.SessionsHold
	rh, err := held.measureSets(ctx, wSessionsHeld, "/bench/set", sessionsWriters)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", wSessionsHeld, err)
	}
	after, err := findLeader(ctx, b.cl)
	if err != nil {
		return nil, err
	}
	stopped = true
	expired, err := stopHolders(hs)
	if err != nil {
		return nil, err
	}
	rh.Sessions, rh.Expired, rh.LeaderChanged = b.cfg.Sessions, expired, before != after
	rh.LeaderIdleCPUms = leaderHeld
	leaderAlone, err := b.nodeCPU(ctx, after)
	if err != nil {
		return []Result{rh}, err
	}
	rb, err := b.measureSets(ctx, wSessionsBaseline, "/bench/set", sessionsWriters)
	if err != nil {
		return []Result{rh}, fmt.Errorf("%s: %w", wSessionsBaseline, err)
	}
	rb.LeaderIdleCPUms = leaderAlone
	return []Result{rh, rb}, nil
}

// nodeCPU returns the CPU time per second node i uses over 10 s (or
// -sessions-hold if shorter) with no writer running: the keep-alives of
// whatever sessions are open.
func (b *bench) nodeCPU(ctx context.Context, i int) (float64, error) {
	window := min(10*time.Second, b.cfg.SessionsHold)
	pid := b.cl.nodes()[i].pid()
	t0, err := cpuTime(pid)
	if err != nil {
		return 0, err
	}
	if err := wait(ctx, window); err != nil {
		return 0, err
	}
	t1, err := cpuTime(pid)
	if err != nil {
		return 0, err
	}
	return float64((t1 - t0).Milliseconds()) / window.Seconds(), nil
}

// raiseFileLimit makes sure this process may hold n open files.
func raiseFileLimit(n uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur >= n {
		return nil
	}
	want := l
	want.Cur, want.Max = n, max(l.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
		return nil
	}
	// Not allowed past the hard limit here: take what it allows.
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("raise the open-file limit to %d: %w", l.Max, err)
	}
	if l.Max < n {
		return fmt.Errorf("this process may open %d files, %d sessions need about %d: lower -sessions", l.Max, n-256, n)
	}
	return nil
}
