package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/grovekit/grove/recipes/lock"
)

// writesPerPhase is how many ledger writes the failover scene waits for
// before the kill, and again after it.
const writesPerPhase = 15

// failoverScene: writers keep taking a lock and writing a ledger; the raft
// leader node is killed; a new leader is elected, the writers carry on
// and the ledger counts every acknowledged write exactly once; the killed
// node comes back from its data dir and catches up.
func (d *demo) failoverScene(ctx context.Context) error {
	dir, path := d.path("failover", "lock"), d.path("failover", "ledger")
	d.out.say("Scene 5, failover: three writers keep taking the lock at %s and adding", dir)
	d.out.say("to a ledger znode, while the raft leader node is killed under them.")
	ws, err := d.dial(ctx, longTimeout, "writer 1", "writer 2", "writer 3")
	if err != nil {
		return err
	}
	defer d.close(ws...)
	if err := ensure(ctx, ws[0].s, path, []byte(`{"token":0,"writes":0}`)); err != nil {
		return err
	}
	writes := &tally{}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	errc := make(chan error, len(ws))
	for _, w := range ws {
		wg.Go(func() { errc <- d.keepWriting(wctx, w, dir, path, writes) })
	}
	if err := awaitWrites(ctx, writes, writesPerPhase, errc); err != nil {
		return err
	}
	killed, before, err := d.killRaftLeader(ctx, writes)
	if err != nil {
		return err
	}
	if err := awaitWrites(ctx, writes, before+writesPerPhase, errc); err != nil {
		return err
	}
	stop()
	wg.Wait()
	close(errc)
	if err := errors.Join(collect(errc)...); err != nil {
		return err
	}
	total, gap := writes.load()
	l, err := readLedger(ctx, ws[0], path)
	if err != nil {
		return err
	}
	if int64(l.Writes) != total {
		return fmt.Errorf("the ledger counted %d writes, the writers were told %d committed", l.Writes, total)
	}
	d.out.milestone("failover: work carried on: %d writes before the kill, %d after; the ledger counted each exactly once (%d)",
		before, total-before, l.Writes)
	d.out.say("(the longest wait between two acknowledged writes was %.1fs)", gap.Seconds())
	return d.restart(ctx, killed)
}

// killRaftLeader kills the raft leader node and waits for a new one. It
// returns the killed node and the writes done before the kill.
func (d *demo) killRaftLeader(ctx context.Context, writes *tally) (*node, int64, error) {
	lead, st, err := d.c.waitLeader(ctx)
	if err != nil {
		return nil, 0, err
	}
	before, _ := writes.load()
	d.out.milestone("failover: killing raft leader %s (term %d) after %d writes; the writers keep going", lead.name, st.Term, before)
	d.out.say("A hard stop: %s says goodbye to nobody and stays a member. Its sessions'", lead.name)
	d.out.say("connections drop; they reconnect to the other nodes and resend what is unanswered.")
	killedAt := time.Now()
	if err := lead.kill(); err != nil {
		d.out.say("(%s stopped with: %v)", lead.name, err)
	}
	next, nst, err := d.c.waitLeader(ctx)
	if err != nil {
		return nil, 0, err
	}
	d.out.milestone("failover: %s is the new raft leader (term %d), %.1fs after the kill; 2 of 3 nodes are a majority",
		next.name, nst.Term, since(killedAt))
	return lead, before, nil
}

// restart brings the killed node back from its data dir and waits until
// it has caught up with the leader.
func (d *demo) restart(ctx context.Context, n *node) error {
	d.out.say("%s restarts from its data dir, on its old addresses, and catches up.", n.name)
	if err := n.start(ctx); err != nil {
		return err
	}
	lead, st, err := d.c.waitLeader(ctx)
	if err != nil {
		return err
	}
	var applied uint64
	err = waitUntil(ctx, n.name+" to catch up", func() bool {
		applied = n.server().Status().AppliedIndex
		return applied >= st.CommitIndex
	})
	if err != nil {
		return err
	}
	d.out.milestone("failover: %s is back as a follower of %s, caught up to index %d", n.name, lead.name, applied)
	return nil
}

// keepWriting takes turns on the lock at dir, writing the ledger at path,
// until ctx ends; writes counts the committed writes.
func (d *demo) keepWriting(ctx context.Context, w *actor, dir, path string, writes *tally) error {
	m := lock.NewMutex(w.s, dir)
	for ctx.Err() == nil {
		err := lockTurn(ctx, w, m, path, func(int64) {})
		switch {
		case err == nil:
			writes.add()
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errHoldLost):
			d.out.say("%s lost its hold before writing (its session may have lapsed); it queues again", w.name)
		default:
			return err
		}
	}
	return nil
}

// awaitWrites waits until writes reaches n, or a writer fails.
func awaitWrites(ctx context.Context, writes *tally, n int64, errc <-chan error) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		done, _ := writes.load()
		if done >= n {
			return nil
		}
		select {
		case err := <-errc:
			if err != nil {
				return err
			}
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d writes (%d done): %w", n, done, ctx.Err())
		}
	}
}

// tally counts the committed writes of the failover scene and the longest
// wait between two. Safe for concurrent use.
type tally struct {
	mu     sync.Mutex
	n      int64
	last   time.Time
	maxGap time.Duration
}

// add counts one write.
func (t *tally) add() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.n > 0 {
		t.maxGap = max(t.maxGap, now.Sub(t.last))
	}
	t.n++
	t.last = now
}

// load returns the writes so far and the longest wait between two.
func (t *tally) load() (int64, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n, t.maxGap
}
