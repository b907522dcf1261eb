package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// value is the 128-byte payload of every write.
var value = []byte(strings.Repeat("grove-bench-val|", 8))

// Workload names.
const (
	wCreate   = "create"
	wSet      = "set"
	wGet      = "get"
	wGetLin   = "get-lin"
	wLock     = "lock"
	wFailover = "failover"
	wRecover  = "recover"
	wIdle     = "idle" // always measured, before the workloads
)

// allWorkloads are the workloads of -workloads all, in run order (get also
// runs get-lin).
var allWorkloads = []string{wCreate, wSet, wGet, wLock, wScale, wFailover, wRecover}

// bench runs the workloads of one target against its started cluster.
type bench struct {
	cfg    Config
	target string
	cl     cluster
	dial   dialer
	logf   func(format string, args ...any)
}

// dialN opens n independent sessions in parallel, placed by placement;
// on error it closes the ones it opened.
func (b *bench) dialN(ctx context.Context, n int) ([]Conn, error) {
	addrs, err := b.placement(ctx)
	if err != nil {
		return nil, err
	}
	conns := make([]Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			conns[i], errs[i] = b.dial(dctx, []string{addrs[i%len(addrs)]})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(conns)
		return nil, fmt.Errorf("dial %d sessions: %w", n, err)
	}
	return conns, nil
}

// placement returns the client addresses in the order sessions take
// them, round-robin: the followers first, then the leader. Every system
// gets the same placement, so a ratio does not depend on where a client
// library's random pick happened to land: C = 1 runs through a follower
// (where two of three clients of a three-node cluster are, and the longer
// path: the write is forwarded to the leader and answered after the
// commit comes back), C = 16 and 64 are spread evenly.
func (b *bench) placement(ctx context.Context) ([]string, error) {
	all := b.cl.addrs()
	leader, err := findLeader(ctx, b.cl)
	if err != nil {
		return nil, err
	}
	order := make([]string, 0, len(all))
	for i, a := range all {
		if i != leader {
			order = append(order, a)
		}
	}
	return append(order, all[leader]), nil
}

func closeAll(conns []Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		if c != nil {
			wg.Go(c.Close)
		}
	}
	wg.Wait()
}

// onEach runs f for every conn in parallel and joins the errors.
func onEach(conns []Conn, f func(w int, c Conn) error) error {
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for w, c := range conns {
		wg.Go(func() { errs[w] = f(w, c) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// opTimeout bounds one operation of a measured workload, so that a server
// that never answers fails the workload instead of hanging the run.
const opTimeout = 30 * time.Second

// opFunc is one operation of worker w; it returns the latency to record.
type opFunc func(ctx context.Context, w int) (time.Duration, error)

// timed wraps an operation whose latency is its whole duration.
func timed(f func(ctx context.Context, w int) error) opFunc {
	return func(ctx context.Context, w int) (time.Duration, error) {
		t0 := time.Now()
		err := f(ctx, w)
		return time.Since(t0), err
	}
}

// measure runs op in n workers for the warm-up and then the measured
// duration. It counts the operations that started after the warm-up and
// ended within the duration, and the CPU usage over that window. The first
// error of any worker ends the run; each operation gets opTimeout.
func (b *bench) measure(ctx context.Context, workload string, n int, op opFunc) (Result, error) {
	start := time.Now().Add(b.cfg.Warmup)
	end := start.Add(b.cfg.Duration)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat := make([][]time.Duration, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for {
				t0 := time.Now()
				if !t0.Before(end) || ctx.Err() != nil {
					return
				}
				octx, ocancel := context.WithTimeout(ctx, opTimeout)
				d, err := op(octx, w)
				ocancel()
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
						err = fmt.Errorf("no answer within %v: %w", opTimeout, err)
					}
					cancel(fmt.Errorf("worker %d: %w", w, err))
					return
				}
				if t1 := time.Now(); !t0.Before(start) && !t1.After(end) {
					lat[w] = append(lat[w], d)
				}
			}
		})
	}
	u0, err0 := b.usageAt(ctx, start)
	u1, err1 := b.usageAt(ctx, end)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return Result{}, err
	}
	if err := errors.Join(err0, err1); err != nil {
		return Result{}, err
	}
	all := slices.Concat(lat...)
	r := Result{Target: b.target, Workload: workload, C: n, Ops: int64(len(all)), Seconds: b.cfg.Duration.Seconds()}
	r.OpsPerSec = float64(r.Ops) / r.Seconds
	r.P50Ms, r.P99Ms, r.P999Ms = percentiles(all)
	if r.Ops > 0 {
		r.CPUPerOpUs = float64((u1.servers - u0.servers).Microseconds()) / float64(r.Ops)
		r.ClientCPUPerOpUs = float64((u1.self - u0.self).Microseconds()) / float64(r.Ops)
	}
	r.OtherCPUms = float64(u1.others(u0).Milliseconds()) / r.Seconds
	return r, nil
}

// usageAt waits until t (a measuring window's edge, not a condition) and
// returns the CPU usage then.
func (b *bench) usageAt(ctx context.Context, t time.Time) (usage, error) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return usageOf(b.cl)
	case <-ctx.Done():
		return usage{}, ctx.Err()
	}
}

// percentiles returns p50, p99 and p99.9 of d in milliseconds (nearest
// rank); d is sorted in place.
func percentiles(d []time.Duration) (p50, p99, p999 float64) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(q*float64(len(d))+0.999999) - 1
		i = min(max(i, 0), len(d)-1)
		return float64(d[i].Microseconds()) / 1000
	}
	return at(0.50), at(0.99), at(0.999)
}

// setup creates the parent nodes every workload uses.
func (b *bench) setup(ctx context.Context) error {
	conns, err := b.dialN(ctx, 1)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	for _, p := range []string{"/bench", "/bench/create", "/bench/set", "/bench/get", "/bench/recover"} {
		if err := conns[0].Create(ctx, p, nil); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}

// withSessions dials n sessions, runs f and closes them.
func (b *bench) withSessions(ctx context.Context, n int, f func(conns []Conn) error) error {
	conns, err := b.dialN(ctx, n)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	return f(conns)
}

// runCreate: each session creates persistent sequential nodes under one
// parent.
func (b *bench) runCreate(ctx context.Context, n int) ([]Result, error) {
	var r Result
	err := b.withSessions(ctx, n, func(conns []Conn) (err error) {
		r, err = b.measure(ctx, wCreate, n, timed(func(ctx context.Context, w int) error {
			return conns[w].CreateSeq(ctx, "/bench/create/n-", value)
		}))
		return err
	})
	return []Result{r}, err
}

// runSet: each session overwrites its own node.
func (b *bench) runSet(ctx context.Context, n int) ([]Result, error) {
	r, err := b.measureSets(ctx, wSet, "/bench/set", n)
	return []Result{r}, err
}

// measureSets measures workload: n sessions each overwriting its own node
// under dir.
func (b *bench) measureSets(ctx context.Context, workload, dir string, n int) (Result, error) {
	var r Result
	err := b.withSessions(ctx, n, func(conns []Conn) error {
		if err := onEach(conns, func(w int, c Conn) error { return c.Create(ctx, workerPath(dir, w), value) }); err != nil {
			return err
		}
		var err error
		r, err = b.measure(ctx, workload, n, timed(func(ctx context.Context, w int) error {
			return conns[w].Set(ctx, workerPath(dir, w), value)
		}))
		return err
	})
	return r, err
}

// runGet: each session reads its own node, first locally (get), then
// linearizably (get-lin).
func (b *bench) runGet(ctx context.Context, n int) ([]Result, error) {
	var rs []Result
	err := b.withSessions(ctx, n, func(conns []Conn) error {
		// The linearizable read makes every server see the node before the
		// local reads start (etcd's serializable reads may lag otherwise).
		if err := onEach(conns, func(w int, c Conn) error {
			if err := c.Create(ctx, workerPath("/bench/get", w), value); err != nil {
				return err
			}
			return c.Get(ctx, workerPath("/bench/get", w), true)
		}); err != nil {
			return err
		}
		for _, lin := range []bool{false, true} {
			name := wGet
			if lin {
				name = wGetLin
			}
			r, err := b.measure(ctx, name, n, timed(func(ctx context.Context, w int) error {
				return conns[w].Get(ctx, workerPath("/bench/get", w), lin)
			}))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			rs = append(rs, r)
		}
		return nil
	})
	return rs, err
}

// runLock: n workers, each with its own session, loop Lock/Unlock on one
// mutex. An operation is one acquisition; its latency is the Lock call.
func (b *bench) runLock(ctx context.Context, n int) ([]Result, error) {
	var r Result
	err := b.withSessions(ctx, n, func(conns []Conn) error {
		mus := make([]Mutex, n)
		if err := onEach(conns, func(w int, c Conn) (err error) {
			mus[w], err = c.Mutex(ctx, "/bench/lock")
			return err
		}); err != nil {
			return err
		}
		var err error
		r, err = b.measure(ctx, wLock, n, func(ctx context.Context, w int) (time.Duration, error) {
			t0 := time.Now()
			if err := mus[w].Lock(ctx); err != nil {
				return 0, fmt.Errorf("lock: %w", err)
			}
			d := time.Since(t0)
			if err := mus[w].Unlock(ctx); err != nil {
				return 0, fmt.Errorf("unlock: %w", err)
			}
			return d, nil
		})
		return err
	})
	return []Result{r}, err
}

func workerPath(dir string, w int) string { return dir + "/w" + strconv.Itoa(w) }
