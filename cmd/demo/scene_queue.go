package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/grovekit/grove/recipes/queue"
)

// Sizes of the queue scene.
const (
	producers   = 2
	perProducer = 5
	consumers   = 3
)

// queueScene: producers fill a queue, consumers work it off; one consumer
// dies holding an item, which is delivered again to another consumer once
// the dead one's session expires. Every item is acknowledged exactly once.
func (d *demo) queueScene(ctx context.Context) error {
	dir := d.path("queue")
	d.out.say("Scene 4, queue: %d producers put %d jobs each on the queue at %s", producers, perProducer, dir)
	d.out.say("(recipes/queue); %d consumers take them. A taken job is leased to its consumer's", consumers)
	d.out.say("session until the consumer acknowledges it; if the session dies, the lease goes too.")
	ps, err := d.dial(ctx, longTimeout, "producer A", "producer B")
	if err != nil {
		return err
	}
	defer d.close(ps...)
	victim := d.rng.IntN(consumers) // the one that dies: it gets a short session timeout
	var cs []*actor
	defer func() { d.close(cs...) }()
	for i := range consumers {
		timeout := longTimeout
		if i == victim {
			timeout = shortTimeout
		}
		a, err := d.dial(ctx, timeout, fmt.Sprintf("consumer %d", i+1))
		if err != nil {
			return err
		}
		cs = append(cs, a...)
	}

	qctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	errc := make(chan error, producers+consumers)
	acks := make(chan *queue.Delivery, producers*perProducer)
	took := make(chan *queue.Delivery, 1) // the dead consumer's delivery
	gate := make(chan struct{})           // closed once it took it
	for i, p := range ps {
		wg.Go(func() { errc <- produce(qctx, p, queue.New(p.s, dir), 'A'+rune(i)) })
	}
	wg.Go(func() {
		errc <- d.dieHolding(qctx, cs[victim], queue.New(cs[victim].s, dir), took, gate)
	})
	for i, c := range cs {
		if i != victim {
			wg.Go(func() { errc <- d.consume(qctx, c, queue.New(c.s, dir), gate, acks) })
		}
	}
	return d.awaitJobs(ctx, took, acks, errc)
}

// awaitJobs waits until every job is acknowledged, once, the dead
// consumer's job among them after a second delivery.
func (d *demo) awaitJobs(ctx context.Context, took <-chan *queue.Delivery, acks <-chan *queue.Delivery, errc <-chan error) error {
	done := map[string]int{} // payload → the delivery acknowledged
	var lost *queue.Delivery
	for len(done) < producers*perProducer || lost == nil {
		select {
		case dl := <-took:
			lost = dl
		case dl := <-acks:
			if n, dup := done[string(dl.Payload)]; dup {
				return fmt.Errorf("%s acknowledged twice (deliveries %d and %d)", dl.Payload, n, dl.Count)
			}
			done[string(dl.Payload)] = dl.Count
		case err := <-errc:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for the jobs (%d of %d done): %w", len(done), producers*perProducer, ctx.Err())
		}
	}
	if n := done[string(lost.Payload)]; n <= lost.Count {
		return fmt.Errorf("%s was acknowledged at delivery %d, not after the dead consumer's delivery %d", lost.Payload, n, lost.Count)
	}
	d.out.milestone("queue: all %d jobs done, each acknowledged exactly once; %s took %d deliveries, nothing was lost",
		len(done), lost.Payload, done[string(lost.Payload)])
	return nil
}

// produce puts perProducer jobs named after the producer.
func produce(ctx context.Context, p *actor, q *queue.Queue, letter rune) error {
	for j := 1; j <= perProducer; j++ {
		if err := q.Put(ctx, fmt.Appendf(nil, "job %c%d", letter, j)); err != nil {
			return fmt.Errorf("%s: put: %w", p.name, err)
		}
		if err := p.work(ctx, 30*time.Millisecond); err != nil {
			return nil // the scene is over
		}
	}
	return nil
}

// dieHolding takes the first job and dies without acknowledging it; the
// delivery goes on took, then gate is closed.
func (d *demo) dieHolding(ctx context.Context, c *actor, q *queue.Queue, took chan<- *queue.Delivery, gate chan<- struct{}) error {
	dl, err := q.Take(ctx)
	if err != nil {
		return fmt.Errorf("%s: take: %w", c.name, err)
	}
	d.out.milestone("queue: %s took %s (delivery %d) and dies before acknowledging it", c.name, dl.Payload, dl.Count)
	c.die()
	d.out.say("Its session expires after %v without a keep-alive; until then the job stays leased to it.", shortTimeout)
	took <- dl
	close(gate)
	return nil
}

// consume takes and acknowledges jobs until ctx ends, starting once the
// doomed consumer took its job (so that it gets one).
func (d *demo) consume(ctx context.Context, c *actor, q *queue.Queue, gate <-chan struct{}, acks chan<- *queue.Delivery) error {
	select {
	case <-gate:
	case <-ctx.Done():
		return nil
	}
	for {
		dl, err := q.Take(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: take: %w", c.name, err)
		}
		if dl.Count > 1 {
			d.out.milestone("queue: %s re-delivered to %s (delivery %d): the dead consumer's lease expired with its session",
				dl.Payload, c.name, dl.Count)
		}
		if err := c.work(ctx, 40*time.Millisecond); err != nil {
			return nil
		}
		actx, cancel := context.WithTimeout(context.Background(), longTimeout)
		err = dl.Ack(actx)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: ack %s: %w", c.name, dl.Payload, err)
		}
		d.out.say("%s did %s", c.name, dl.Payload)
		select {
		case acks <- dl:
		case <-ctx.Done():
			return nil
		}
	}
}
