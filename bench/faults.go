package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// failoverOpTimeout bounds each write of the failover writer (where the
// client takes a ctx); a timed-out write is retried at once.
const failoverOpTimeout = time.Second

// wait returns after d or when ctx ends. It paces measurement windows and
// retries; it never stands in for waiting on a condition.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idleWindow is how long the idle CPU of a cluster is measured.
const idleWindow = 2 * time.Second

// runIdle measures the CPU time the servers use per second with no client
// but the harness's setup session gone: the floor under every CPU/op
// figure at low load.
func (b *bench) runIdle(ctx context.Context) (Result, error) {
	u0, err := usageOf(b.cl)
	if err != nil {
		return Result{}, err
	}
	if err := wait(ctx, idleWindow); err != nil {
		return Result{}, err
	}
	u1, err := usageOf(b.cl)
	return Result{Target: b.target, Workload: wIdle,
		IdleCPUms:  float64((u1.servers - u0.servers).Milliseconds()) / idleWindow.Seconds(),
		OtherCPUms: float64(u1.others(u0).Milliseconds()) / idleWindow.Seconds()}, err
}

// runFailover: one session writes one node, one write at a time, while the
// leader is SIGKILLed; the result is the longest gap between two
// successful writes, per kill. The killed node is restarted and the
// cluster is ready again before the next kill.
//
// Unlike the throughput workloads' sessions (placement), the writer is
// given every address: its client must be free to move when the server it
// uses is killed.
func (b *bench) runFailover(ctx context.Context) ([]Result, error) {
	r := Result{Target: b.target, Workload: wFailover, C: 1}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := b.dial(dctx, b.cl.addrs())
	cancel()
	if err != nil {
		return []Result{r}, fmt.Errorf("dial the failover writer: %w", err)
	}
	defer c.Close()
	if err := c.Create(ctx, "/bench/failover", value); err != nil {
		return []Result{r}, err
	}
	for range b.cfg.FailoverRuns {
		gap, err := b.failoverOnce(ctx, c)
		if err != nil {
			return []Result{r}, err
		}
		r.GapsS = append(r.GapsS, gap.Seconds())
		r.MaxGapS = max(r.MaxGapS, gap.Seconds())
	}
	return []Result{r}, nil
}

func (b *bench) failoverOnce(ctx context.Context, c Conn) (time.Duration, error) {
	type write struct{ start, end time.Time }
	var (
		mu  sync.Mutex
		oks []write // the successful writes, in completion order
	)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	wg.Go(func() {
		for wctx.Err() == nil {
			octx, cancel := context.WithTimeout(wctx, failoverOpTimeout)
			t0 := time.Now()
			err := c.Set(octx, "/bench/failover", value)
			cancel()
			if err != nil {
				// Some clients fail at once while disconnected: pace the retries.
				_ = wait(wctx, 5*time.Millisecond)
				continue
			}
			mu.Lock()
			oks = append(oks, write{t0, time.Now()})
			mu.Unlock()
		}
	})
	if err := wait(ctx, time.Second); err != nil {
		return 0, err
	}
	// Ask right before the kill: a node restarted by the previous run may
	// have moved the leadership since the cluster was ready.
	leader, err := findLeader(ctx, b.cl)
	if err != nil {
		return 0, err
	}
	p := b.cl.nodes()[leader]
	p.kill()
	dead := time.Now() // the process has been reaped
	b.logf("%s: failover: killed leader %s", b.target, p.name)
	// Writes have resumed once one that started after the death succeeds.
	err = poll(ctx, 60*time.Second, 5*time.Millisecond, "writes resume after the kill", func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if len(oks) > 0 && oks[len(oks)-1].start.After(dead) {
			return nil
		}
		return errors.New("no write started after the kill has succeeded")
	})
	if err != nil {
		return 0, err
	}
	// Keep writing a moment longer: a second stall right after the first
	// success counts too.
	if err := wait(ctx, time.Second); err != nil {
		return 0, err
	}
	stop()
	wg.Wait()
	var gap time.Duration
	for i := 1; i < len(oks); i++ {
		gap = max(gap, oks[i].end.Sub(oks[i-1].end))
	}
	if err := p.start(); err != nil {
		return 0, err
	}
	if err := waitReady(ctx, b.cl); err != nil {
		return 0, fmt.Errorf("after restarting %s: %w", p.name, err)
	}
	return gap, nil
}

// runRecover loads cfg.RecoverNodes nodes (and a last one), records the
// data dir size and server RSS, SIGKILLs the whole cluster, starts it
// again and times until a linearizable read of the last node succeeds,
// with a fresh session per attempt.
func (b *bench) runRecover(ctx context.Context) ([]Result, error) {
	r := Result{Target: b.target, Workload: wRecover, Nodes: b.cfg.RecoverNodes}
	loaders := min(64, max(1, b.cfg.RecoverNodes))
	t0 := time.Now()
	err := b.withSessions(ctx, loaders, func(conns []Conn) error {
		err := onEach(conns, func(w int, c Conn) error {
			for i := w; i < b.cfg.RecoverNodes; i += loaders {
				if err := c.Create(ctx, fmt.Sprintf("/bench/recover/n%07d", i), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return conns[0].Create(ctx, "/bench/recover/last", value)
	})
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	r.LoadSeconds = time.Since(t0).Seconds()
	for i, p := range b.cl.nodes() {
		size, err := diskUsage(b.cl.dataDir(i))
		if err != nil {
			return nil, err
		}
		m, err := rss(p.pid())
		if err != nil {
			return nil, err
		}
		r.DataDirBytes, r.RSSBytes = max(r.DataDirBytes, size), max(r.RSSBytes, m)
	}
	stopAll(b.cl)
	start := time.Now()
	for _, p := range b.cl.nodes() {
		if err := p.start(); err != nil {
			return nil, err
		}
	}
	err = poll(ctx, 2*startTimeout, 5*time.Millisecond, "read the last node after the restart", func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c, err := b.dial(actx, b.cl.addrs())
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Get(actx, "/bench/recover/last", true)
	})
	if err != nil {
		return nil, err
	}
	r.RestartS = time.Since(start).Seconds()
	return []Result{r}, nil
}
