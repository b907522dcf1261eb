package main

import (
	"context"
	"fmt"
	"sync"
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
	if err := raiseFileLimit(uint64(b.cfg.Sessions) + 256); err != nil {
		return nil, err
	}
	addrs := b.cl.addrs()
	idle := make([]Conn, b.cfg.Sessions)
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
			c, err := b.dial(dctx, []string{addrs[i%len(addrs)]})
			mu.Lock()
			defer mu.Unlock()
			idle[i] = c
			if err != nil && dialErr == nil {
				dialErr = fmt.Errorf("idle session %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	defer func() { closeAll(idle) }() // idle is nil once closed below
	if dialErr != nil {
		return nil, dialErr
	}
	b.logf("%s: sessions: %d idle sessions open", b.target, len(idle))
	before, err := findLeader(ctx, b.cl)
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
	rh.Sessions, rh.Expired, rh.LeaderChanged = len(idle), -1, before != after
	counted := 0
	for _, c := range idle {
		if e, ok := c.(expirer); ok {
			if counted == 0 {
				rh.Expired = 0
			}
			counted++
			if e.Expired() {
				rh.Expired++
			}
		}
	}
	closeAll(idle)
	idle = nil
	rb, err := b.measureSets(ctx, wSessionsBaseline, "/bench/set", sessionsWriters)
	if err != nil {
		return []Result{rh}, fmt.Errorf("%s: %w", wSessionsBaseline, err)
	}
	return []Result{rh, rb}, nil
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
