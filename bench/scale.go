package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// The scale workload asks whether a write costs more as the tree grows:
//
//   - scale-set-empty and scale-set-full: each session overwrites its own
//     node, at C = 1 and 16, on the fresh tree and again after ScaleNodes
//     other znodes were loaded;
//   - scale-wide: each session creates and then deletes a child with a
//     1,000-byte name under a parent that already holds ScaleWide such
//     children (C = 1); one op is the create and the delete.
const (
	wScale         = "scale"
	wScaleSetEmpty = "scale-set-empty"
	wScaleSetFull  = "scale-set-full"
	wScaleWide     = "scale-wide"
)

// scaleClients are the concurrencies the scale sets run at.
var scaleClients = []int{1, 16}

// wideName is a 1,000-byte child name ending in tag.
func wideName(tag string) string {
	return strings.Repeat("w", 1000-len(tag)) + tag
}

func (b *bench) runScale(ctx context.Context) ([]Result, error) {
	var out []Result
	sets := func(workload string) error {
		for _, n := range scaleClients {
			r, err := b.measureSets(ctx, workload, "/bench/scale/set", n)
			if err != nil {
				return fmt.Errorf("%s C=%d: %w", workload, n, err)
			}
			out = append(out, r)
		}
		return nil
	}
	if err := b.withSessions(ctx, 1, func(conns []Conn) error {
		for _, p := range []string{"/bench/scale", "/bench/scale/set", "/bench/scale/fill", "/bench/scale/wide"} {
			if err := conns[0].Create(ctx, p, nil); err != nil {
				return fmt.Errorf("create %s: %w", p, err)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := sets(wScaleSetEmpty); err != nil {
		return out, err
	}
	if err := b.load(ctx, "/bench/scale/fill/n", b.cfg.ScaleNodes, func(i int) string { return fmt.Sprintf("%07d", i) }); err != nil {
		return out, err
	}
	if err := sets(wScaleSetFull); err != nil {
		return out, err
	}
	if err := b.load(ctx, "/bench/scale/wide/", b.cfg.ScaleWide, func(i int) string { return wideName(fmt.Sprintf("%06d", i)) }); err != nil {
		return out, err
	}
	var r Result
	err := b.withSessions(ctx, 1, func(conns []Conn) (err error) {
		i := 0
		r, err = b.measure(ctx, wScaleWide, 1, func(ctx context.Context, _ int) (time.Duration, error) {
			t0 := time.Now()
			p := "/bench/scale/wide/" + wideName(fmt.Sprintf("x%08d", i))
			i++
			if err := conns[0].Create(ctx, p, nil); err != nil {
				return 0, err
			}
			return time.Since(t0), conns[0].Delete(ctx, p)
		})
		return err
	})
	if err != nil {
		return out, fmt.Errorf("%s: %w", wScaleWide, err)
	}
	return append(out, r), nil
}

// load creates count nodes prefix+name(i) from up to 64 sessions.
func (b *bench) load(ctx context.Context, prefix string, count int, name func(int) string) error {
	loaders := min(64, max(1, count))
	return b.withSessions(ctx, loaders, func(conns []Conn) error {
		return onEach(conns, func(w int, c Conn) error {
			for i := w; i < count; i += loaders {
				if err := c.Create(ctx, prefix+name(i), value); err != nil {
					return fmt.Errorf("load %s: %w", prefix, err)
				}
			}
			return nil
		})
	})
}
