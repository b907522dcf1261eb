package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/grovekit/grove/recipes/config"
)

// limits is the configuration value of the config scene.
type limits struct {
	MaxConns int    `json:"max_conns"`
	Mode     string `json:"mode"`
}

func (l limits) String() string { return fmt.Sprintf("max_conns=%d mode=%s", l.MaxConns, l.Mode) }

// sighting is one watcher seeing one version.
type sighting struct {
	watcher string
	v       config.Versioned[limits]
}

// configScene: a value is set and changed; every watcher sees every
// change; a write based on a stale read is refused.
func (d *demo) configScene(ctx context.Context) error {
	path := d.path("config", "limits")
	d.out.say("Scene 3, config: an operator sets a value at %s (recipes/config);", path)
	d.out.say("three API servers watch it and pick up every change as it is committed.")
	as, err := d.dial(ctx, longTimeout, "operator", "api-1", "api-2", "api-3")
	if err != nil {
		return err
	}
	defer d.close(as...)
	op, watchers := as[0], as[1:]
	v := config.New[limits](op.s, path)
	ver, err := v.Set(ctx, limits{MaxConns: 100, Mode: "normal"}, -1)
	if err != nil {
		return err
	}

	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	seen := make(chan sighting)
	for _, w := range watchers {
		ch, err := config.New[limits](w.s, path).Watch(wctx)
		if err != nil {
			return fmt.Errorf("%s: watch: %w", w.name, err)
		}
		wg.Go(func() {
			for cur := range ch {
				select {
				case seen <- sighting{w.name, cur}:
				case <-wctx.Done():
				}
			}
		})
	}
	if err := d.awaitVersion(ctx, seen, ver, len(watchers), time.Time{}); err != nil {
		return err
	}
	return d.changeConfig(ctx, v, seen, len(watchers))
}

// changeConfig changes the value twice, once through a stale read that is
// refused and read again.
func (d *demo) changeConfig(ctx context.Context, v *config.Value[limits], seen <-chan sighting, watchers int) error {
	cur, err := v.Get(ctx)
	if err != nil {
		return err
	}
	next := limits{MaxConns: 250, Mode: cur.Value.Mode}
	d.out.say("The operator raises max_conns: a compare-and-set on version %d.", cur.Version)
	start := time.Now()
	ver, err := v.Set(ctx, next, cur.Version)
	if err != nil {
		return err
	}
	if err := d.awaitVersion(ctx, seen, ver, watchers, start); err != nil {
		return err
	}
	d.out.say("A second operator, still holding version %d from before, tries mode=eco:", cur.Version)
	_, err = v.Set(ctx, limits{MaxConns: cur.Value.MaxConns, Mode: "eco"}, cur.Version)
	if !errors.Is(err, config.ErrConflict) {
		return fmt.Errorf("a set on stale version %d was not refused as a conflict: %w", cur.Version, orSucceeded(err))
	}
	d.out.milestone("config: the stale write is refused (%v): it would have undone max_conns=250", err)
	fresh, err := v.Get(ctx)
	if err != nil {
		return err
	}
	fresh.Value.Mode = "eco"
	start = time.Now()
	if ver, err = v.Set(ctx, fresh.Value, fresh.Version); err != nil {
		return err
	}
	d.out.say("It reads again (version %d) and sets mode=eco on top of it.", fresh.Version)
	return d.awaitVersion(ctx, seen, ver, watchers, start)
}

// awaitVersion waits until every watcher saw version ver, narrating what
// each sees and, unless start is zero, how long since the write began.
func (d *demo) awaitVersion(ctx context.Context, seen <-chan sighting, ver int32, watchers int, start time.Time) error {
	got := map[string]bool{}
	var val limits
	for len(got) < watchers {
		select {
		case s := <-seen:
			d.out.say("%s sees version %d: %v", s.watcher, s.v.Version, s.v.Value)
			if s.v.Version == ver {
				got[s.watcher], val = true, s.v.Value
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for every watcher to see version %d (%d did): %w", ver, len(got), ctx.Err())
		}
	}
	if start.IsZero() {
		d.out.milestone("config: version %d (%v) seen by all %d watchers", ver, val, watchers)
	} else {
		d.out.milestone("config: version %d (%v) seen by all %d watchers %dms after the write began",
			ver, val, watchers, time.Since(start).Milliseconds())
	}
	return nil
}
