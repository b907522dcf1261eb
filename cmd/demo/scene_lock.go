package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/recipes/lock"
)

// ledger is the resource a lock protects in the demo: a znode that
// remembers the highest fencing token it was written with and refuses an
// older one, as a fenced storage service would.
type ledger struct {
	Token  int64 `json:"token"`  // the highest token accepted
	Writes int   `json:"writes"` // writes accepted
}

// errStale is returned by writeLedger for a token older than the ledger's.
var errStale = errors.New("refused: the ledger has seen a newer fencing token")

// errHoldLost is returned by lockTurn when the hold went away before the
// ledger write committed (the write did not happen).
var errHoldLost = errors.New("the lock hold was lost")

// writeLedger adds one write to the ledger at path with token, in one
// Multi with guard (the lock's guard op: commit only while the lock is
// held; none for an unguarded write).
func writeLedger(ctx context.Context, a *actor, path string, token int64, guard ...grove.Op) error {
	data, st, err := a.s.Get(ctx, path)
	if err != nil {
		return err
	}
	var l ledger
	if err := json.Unmarshal(data, &l); err != nil {
		return fmt.Errorf("ledger %s: %w", path, err)
	}
	if token < l.Token {
		return fmt.Errorf("token %d: %w (%d)", token, errStale, l.Token)
	}
	l.Token, l.Writes = token, l.Writes+1
	data, _ = json.Marshal(l)
	_, err = a.s.Multi(ctx, append(guard, grove.SetOp(path, data, st.Version))...)
	return err
}

// readLedger reads the ledger at path, as of now (Sync first).
func readLedger(ctx context.Context, a *actor, path string) (ledger, error) {
	var l ledger
	if err := a.s.Sync(ctx); err != nil {
		return l, err
	}
	data, _, err := a.s.Get(ctx, path)
	if err == nil {
		err = json.Unmarshal(data, &l)
	}
	return l, err
}

// lockTurn takes m, tells onHold the fencing token, works a little,
// writes the ledger at path under the lock and unlocks. It returns
// errHoldLost if the hold went away before the write (which then did not
// happen). Once the lock is held the turn is finished even if
// ctx ends: a write cut short would have an unknown outcome.
func lockTurn(ctx context.Context, a *actor, m *lock.Mutex, path string, onHold func(token int64)) error {
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("%s: lock: %w", a.name, err)
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*longTimeout)
	defer cancel()
	defer func() { _ = m.Unlock(hctx) }()
	token, err := m.Token()
	guard, gerr := m.Guard()
	if err := errors.Join(err, gerr); err != nil {
		return errHoldLost
	}
	onHold(token)
	if err := a.work(hctx, 40*time.Millisecond); err != nil {
		return err
	}
	err = writeLedger(hctx, a, path, token, guard)
	if errors.Is(err, grove.ErrNoNode) {
		return errHoldLost // the guard failed: our lock node is gone
	}
	if err != nil {
		return fmt.Errorf("%s: write the ledger with token %d: %w", a.name, token, err)
	}
	return nil
}

// lockScene: workers contend for one lock; each hold has a fencing token
// larger than every earlier one, and a late write with an old token is
// refused.
func (d *demo) lockScene(ctx context.Context) error {
	const workers, turns = 4, 2
	dir, path := d.path("lock"), d.path("ledger")
	d.out.say("Scene 1, lock: %d workers (each its own session) take turns on the lock at", workers)
	d.out.say("%s, %d turns each, writing to a ledger znode while they hold it.", dir, turns)
	d.out.say("Every hold gets a fencing token (the zxid of its lock node). Tokens only grow,")
	d.out.say("so the ledger can refuse a writer that was overtaken by a later holder.")
	ws, err := d.dial(ctx, longTimeout, "worker 1", "worker 2", "worker 3", "worker 4")
	if err != nil {
		return err
	}
	defer d.close(ws...)
	if err := ensure(ctx, ws[0].s, path, []byte(`{"token":0,"writes":0}`)); err != nil {
		return err
	}
	var mu sync.Mutex
	var tokens []int64
	g, lctx := errgroup.WithContext(ctx) // one failure ends them all
	for _, w := range ws {
		g.Go(func() error {
			m := lock.NewMutex(w.s, dir)
			for range turns {
				err := lockTurn(lctx, w, m, path, func(token int64) {
					mu.Lock()
					tokens = append(tokens, token) // in hold order: holds never overlap
					mu.Unlock()
					d.out.milestone("lock: %s holds the lock, fencing token %d", w.name, token)
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return d.checkLock(ctx, ws[0], path, tokens, workers*turns)
}

// checkLock checks that the tokens grew with every hold and the ledger
// took every write, then shows a stale token refused.
func (d *demo) checkLock(ctx context.Context, a *actor, path string, tokens []int64, want int) error {
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			return fmt.Errorf("fencing token %d after %d: tokens must grow", tokens[i], tokens[i-1])
		}
	}
	l, err := readLedger(ctx, a, path)
	if err != nil {
		return err
	}
	if l.Writes != want || len(tokens) != want {
		return fmt.Errorf("ledger took %d writes in %d holds, want %d", l.Writes, len(tokens), want)
	}
	d.out.milestone("lock: %d holds, one at a time, tokens %d..%d always growing; the ledger took all %d writes",
		len(tokens), tokens[0], tokens[len(tokens)-1], l.Writes)
	err = writeLedger(ctx, a, path, tokens[0])
	if !errors.Is(err, errStale) {
		return fmt.Errorf("a write with the first token %d was not refused as stale: %w", tokens[0], orSucceeded(err))
	}
	d.out.milestone("lock: a late write with the first holder's token %d is %v (%d)", tokens[0], errStale, l.Token)
	return nil
}

// orSucceeded returns err, or an error saying that the call succeeded.
func orSucceeded(err error) error {
	if err == nil {
		return errors.New("it succeeded")
	}
	return err
}

// collect drains a closed error channel.
func collect(errc <-chan error) []error {
	var out []error
	for err := range errc {
		out = append(out, err)
	}
	return out
}
