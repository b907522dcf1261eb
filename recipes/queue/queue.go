package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/recipes/internal/contend"
)

// Errors.
var (
	// ErrFull is returned by Put when the queue holds Max items or more.
	ErrFull = errors.New("queue: full")
	// ErrLeaseLost is returned by Ack and Nack when the delivery is no
	// longer this consumer's (its session expired and the item went to
	// another consumer, or it was acknowledged already).
	ErrLeaseLost = errors.New("queue: lease lost")
)

// Option tunes a Queue; the recipes take options the way the client does.
type Option func(*options)

type options struct {
	max           int
	maxDeliveries int
}

// WithMax bounds the queue's length (default unbounded). The check is made
// before the write: concurrent producers may overshoot by their number.
func WithMax(n int) Option { return func(o *options) { o.max = n } }

// WithMaxDeliveries moves an item to the dead-letter directory once it has
// been delivered n times without an Ack (default never).
func WithMaxDeliveries(n int) Option { return func(o *options) { o.maxDeliveries = n } }

// Queue is a queue at a directory.
type Queue struct {
	s    *client.Session
	dir  string
	opts options
}

// New returns the queue at dir.
func New(s *client.Session, dir string, opts ...Option) *Queue {
	q := &Queue{s: s, dir: dir}
	for _, o := range opts {
		o(&q.opts)
	}
	return q
}

// DefaultPriority is the priority of Put; lower numbers are served first.
const DefaultPriority = 500

func (q *Queue) items() string  { return q.dir + "/items" }
func (q *Queue) leases() string { return q.dir + "/leases" }
func (q *Queue) dead() string   { return q.dir + "/dead" }

func (q *Queue) ensure(ctx context.Context) error {
	for _, p := range []string{q.items(), q.leases(), q.dead()} {
		if err := contend.EnsurePath(ctx, q.s, p); err != nil {
			return err
		}
	}
	return nil
}

// Put appends an item with the default priority.
func (q *Queue) Put(ctx context.Context, payload []byte) error {
	return q.PutPriority(ctx, payload, DefaultPriority)
}

// PutPriority appends an item with priority 0..999 (lower first; FIFO
// within a priority).
func (q *Queue) PutPriority(ctx context.Context, payload []byte, priority int) error {
	if priority < 0 || priority > 999 {
		return fmt.Errorf("queue: priority %d outside 0..999: %w", priority, grove.ErrBadArguments)
	}
	if err := q.ensure(ctx); err != nil {
		return err
	}
	if q.opts.max > 0 {
		n, err := q.Len(ctx)
		if err != nil {
			return err
		}
		if n >= q.opts.max {
			return fmt.Errorf("%w: %d items, bound %d", ErrFull, n, q.opts.max)
		}
	}
	_, err := q.s.Create(ctx, fmt.Sprintf("%s/i-%03d-", q.items(), priority), payload, grove.ModePersistentSequential, grove.OpenACLUnsafe)
	return err
}

// Len returns the number of items queued (taken and not acknowledged
// ones included).
func (q *Queue) Len(ctx context.Context) (int, error) {
	ok, st, err := q.s.Exists(ctx, q.items())
	if err != nil || !ok {
		return 0, err
	}
	return int(st.NumChildren), nil
}

// Delivery is a taken item, leased to the consumer until Ack or Nack.
type Delivery struct {
	Payload []byte
	Item    string // the item's name
	Count   int    // the delivery number: 1 for the first
	q       *Queue
	lease   string
}

// Take claims the next item, waiting for one.
func (q *Queue) Take(ctx context.Context) (*Delivery, error) {
	if err := q.ensure(ctx); err != nil {
		return nil, err
	}
	for {
		names, _, itemsW, err := q.s.ChildrenW(ctx, q.items())
		if err != nil {
			return nil, err
		}
		_, _, leasesW, err := q.s.ChildrenW(ctx, q.leases())
		if err != nil {
			return nil, err
		}
		live := map[string]bool{}
		if ls, _, err := q.s.Children(ctx, q.leases()); err == nil {
			for _, l := range ls {
				live[l] = true
			}
		} else {
			return nil, err
		}
		// Names sort by priority, then sequence: the queue's order.
		for _, name := range sortedItems(names) {
			d, err := q.claim(ctx, name, live)
			if err != nil {
				return nil, err
			}
			if d != nil {
				return d, nil
			}
		}
		select {
		case <-itemsW:
		case <-leasesW:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.s.Done():
			return nil, q.s.Err()
		}
	}
}

func sortedItems(names []string) []string {
	out := names[:0:0]
	for _, n := range names {
		if strings.HasPrefix(n, "i-") {
			out = append(out, n)
		}
	}
	// Children come sorted by name already.
	return out
}

// claim tries to take item name; nil if someone else holds or took it.
func (q *Queue) claim(ctx context.Context, name string, live map[string]bool) (*Delivery, error) {
	path := q.items() + "/" + name
	data, st, err := q.s.Get(ctx, path)
	if errors.Is(err, grove.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	d := int(st.Version) // deliveries so far
	if d > 0 {
		// The lease of the current delivery, looked up after the item (the
		// leases listed earlier may predate that delivery's claim).
		current := fmt.Sprintf("%s.%d", name, d)
		if live[current] {
			return nil, nil
		}
		held, _, err := q.s.Exists(ctx, q.leases()+"/"+current)
		if err != nil {
			return nil, err
		}
		if held {
			return nil, nil // leased right now
		}
	}
	if q.opts.maxDeliveries > 0 && d >= q.opts.maxDeliveries {
		_, err := q.s.Multi(ctx,
			grove.CheckOp(path, st.Version),
			grove.CreateOp(q.dead()+"/"+name, data, grove.ModePersistent, grove.OpenACLUnsafe),
			grove.DeleteOp(path, st.Version))
		if err != nil && !isRace(err) {
			return nil, err
		}
		return nil, nil
	}
	lease := fmt.Sprintf("%s/%s.%d", q.leases(), name, d+1)
	err = q.claimOnce(ctx, path, data, st.Version, lease)
	switch {
	case err == nil:
		return &Delivery{Payload: data, Item: name, Count: d + 1, q: q, lease: lease}, nil
	case isRace(err):
		return nil, nil
	}
	return nil, err
}

// claimOnce runs the claim multi to its end even if ctx ends first: a
// claim whose outcome the caller never learned would leave the item leased
// to a live session that will never Ack it. If ctx ends first, the claim,
// once applied, is given back (its lease deleted) by a goroutine the
// session owns.
func (q *Queue) claimOnce(ctx context.Context, path string, data []byte, version int32, lease string) error {
	done := make(chan error, 1)
	if !q.s.Go(func(life context.Context) {
		_, err := q.s.Multi(life,
			grove.SetOp(path, data, version),
			grove.CreateOp(lease, nil, grove.ModeEphemeral, grove.OpenACLUnsafe))
		done <- err
	}) {
		return q.s.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		contend.Abandon(q.s, done, func(err error) (string, bool) { return lease, err == nil })
		return ctx.Err()
	}
}

// isRace reports a multi lost to another consumer.
func isRace(err error) bool {
	return errors.Is(err, grove.ErrBadVersion) || errors.Is(err, grove.ErrNoNode) || errors.Is(err, grove.ErrNodeExists)
}

// Ack removes the item for good. It fails with ErrLeaseLost if the
// delivery is no longer this consumer's. If ctx ends first the outcome is
// unknown (the Ack may still apply): give it a ctx long enough to learn it.
func (d *Delivery) Ack(ctx context.Context) error {
	_, err := d.q.s.Multi(ctx,
		grove.DeleteOp(d.lease, -1),
		grove.DeleteOp(d.q.items()+"/"+d.Item, int32(d.Count)))
	if isRace(err) {
		return ErrLeaseLost
	}
	return err
}

// Nack gives the item back for another delivery.
func (d *Delivery) Nack(ctx context.Context) error {
	_, err := d.q.s.Multi(ctx,
		grove.CheckOp(d.q.items()+"/"+d.Item, int32(d.Count)),
		grove.DeleteOp(d.lease, -1))
	if isRace(err) {
		return ErrLeaseLost
	}
	return err
}

// Dead lists the names of the items in the dead-letter directory.
func (q *Queue) Dead(ctx context.Context) ([]string, error) {
	names, _, err := q.s.Children(ctx, q.dead())
	if errors.Is(err, grove.ErrNoNode) {
		return nil, nil
	}
	return names, err
}
