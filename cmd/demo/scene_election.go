package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/grovekit/grove/recipes/election"
)

// won is a campaigner that became leader, or whose campaign failed.
type won struct {
	i    int // index of the campaigner
	term int64
	at   time.Time
	err  error // why the campaign failed
}

// electionScene: three candidates campaign; the leader's client dies; the
// next candidate takes over with a higher term, after the old leader
// learned it may no longer lead.
func (d *demo) electionScene(ctx context.Context) error {
	dir := d.path("election")
	d.out.say("Scene 2, election: three scheduler replicas campaign at %s (recipes/election).", dir)
	d.out.say("One leads; the others queue behind it. Each leadership has a term that grows.")
	cs, err := d.dial(ctx, shortTimeout, "scheduler-a", "scheduler-b", "scheduler-c", "observer")
	if err != nil {
		return err
	}
	defer d.close(cs...)
	obs, cs := cs[3], cs[:3]

	octx, stopObserving := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopObserving()
	observed := make(chan int64)
	wg.Go(func() {
		for l := range election.Observe(octx, obs.s, dir) {
			d.out.say("observer: the leader is now %s (term %d)", l.Value, l.Term)
			select {
			case observed <- l.Term:
			case <-octx.Done():
			}
		}
	})

	cctx, stopCampaigns := context.WithCancel(ctx)
	defer stopCampaigns()
	es := make([]*election.Election, len(cs))
	wins := make(chan won, len(cs))
	for i, c := range cs {
		es[i] = election.New(c.s, dir)
		wg.Go(func() {
			err := es[i].Campaign(cctx, []byte(c.name))
			term, _ := es[i].Term()
			if cctx.Err() == nil {
				wins <- won{i: i, term: term, at: time.Now(), err: err}
			}
		})
	}
	first, err := nextWin(ctx, wins)
	if err != nil {
		return err
	}
	d.out.milestone("election: %s leads, term %d", cs[first.i].name, first.term)
	if err := awaitObserved(ctx, observed, first.term); err != nil {
		return err
	}
	return d.killLeader(ctx, es, cs, first, wins, observed)
}

// awaitObserved waits until the observer reports a leader of term or a
// later one.
func awaitObserved(ctx context.Context, observed <-chan int64, term int64) error {
	for {
		select {
		case t := <-observed:
			if t >= term {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for the observer to see term %d: %w", term, ctx.Err())
		}
	}
}

// killLeader kills the leading campaigner's client and follows the
// takeover.
func (d *demo) killLeader(ctx context.Context, es []*election.Election, cs []*actor, first won, wins <-chan won, observed <-chan int64) error {
	leader := cs[first.i]
	lost := es[first.i].Lost()
	d.out.say("Now %s's process dies: its connection drops and never comes back. Nobody", leader.name)
	d.out.say("tells the cluster; it expires the session once %v pass without a keep-alive.", shortTimeout)
	killed := time.Now()
	leader.die()

	var next won
	var lostAt time.Time
	for got := false; !got || lostAt.IsZero(); {
		select {
		case next = <-wins:
			if next.err != nil {
				return fmt.Errorf("%s: campaign: %w", cs[next.i].name, next.err)
			}
			got = true
		case <-lost:
			lostAt, lost = time.Now(), nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for a new leader, and for %s to see its leadership lost: %w", leader.name, ctx.Err())
		}
	}
	if next.term <= first.term {
		return fmt.Errorf("new term %d is not above the old one, %d", next.term, first.term)
	}
	d.out.milestone("election: %s took over %.1fs after %s died, with term %d > %d",
		cs[next.i].name, next.at.Sub(killed).Seconds(), leader.name, next.term, first.term)
	if lostAt.Before(next.at) {
		d.out.say("(%s's own Lost() channel closed at +%.1fs, before the takeover: a leader whose", leader.name, lostAt.Sub(killed).Seconds())
		d.out.say("session may have expired stops leading on its own, so two never lead at once.)")
	}
	if err := awaitObserved(ctx, observed, next.term); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, longTimeout)
	defer cancel()
	if err := es[next.i].Resign(rctx); err != nil && !errors.Is(err, election.ErrNotLeader) {
		return fmt.Errorf("%s: resign: %w", cs[next.i].name, err)
	}
	third, err := nextWin(ctx, wins)
	if err != nil {
		return err
	}
	d.out.milestone("election: %s resigned; %s leads now, term %d", cs[next.i].name, cs[third.i].name, third.term)
	return awaitObserved(ctx, observed, third.term)
}

// nextWin waits for the next campaigner to win.
func nextWin(ctx context.Context, wins <-chan won) (won, error) {
	select {
	case w := <-wins:
		if w.err != nil {
			return w, fmt.Errorf("campaigner %d: %w", w.i+1, w.err)
		}
		return w, nil
	case <-ctx.Done():
		return won{}, fmt.Errorf("waiting for a leader: %w", ctx.Err())
	}
}
