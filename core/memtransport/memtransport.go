// Package memtransport is an in-memory core.Transport for tests: a Network
// connects the transports of in-process nodes and lets a test drop, delay
// and partition their messages.
//
// # Usage
//
//	net := memtransport.NewNetwork()
//	cfg.Transport = net.Transport(cfg.ID)
//	...
//	net.Partition([]uint64{1}, []uint64{2, 3}) // 1 is cut off from 2 and 3
//	net.Heal()
//
// Messages between two connected nodes are delivered in order, by one
// goroutine per link, after the link's delay.
package memtransport

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/grovekit/grove/core"
)

// ErrUnreachable is returned by SendSnapshot when the peer is cut off or
// unknown.
var ErrUnreachable = errors.New("memtransport: peer unreachable")

// linkQueue is the bounded queue of one directed link.
const linkQueue = 4096

// Network connects in-memory transports. It is safe for concurrent use.
type Network struct {
	// mu guards the fields below it.
	mu        sync.Mutex
	nodes     map[uint64]*Transport
	cut       map[[2]uint64]bool          // (from, to) pairs that drop everything
	dropRate  map[[2]uint64]float64       // (from, to) → probability of dropping a message
	delay     map[[2]uint64]time.Duration // (from, to) → delivery delay
	rng       *rand.Rand
	delivered uint64
	dropped   uint64
}

// NewNetwork returns an empty network; drop decisions use a seeded
// generator (seed 1) so runs repeat.
func NewNetwork() *Network {
	return &Network{
		nodes:    map[uint64]*Transport{},
		cut:      map[[2]uint64]bool{},
		dropRate: map[[2]uint64]float64{},
		delay:    map[[2]uint64]time.Duration{},
		rng:      rand.New(rand.NewPCG(1, 2)),
	}
}

// SetSeed reseeds the drop decisions.
func (nw *Network) SetSeed(seed uint64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Transport returns the transport of node id, creating it. A node restarted
// with the same id gets a fresh transport.
func (nw *Network) Transport(id uint64) *Transport {
	t := &Transport{nw: nw, id: id, links: map[uint64]*link{}, stopc: make(chan struct{})}
	nw.mu.Lock()
	nw.nodes[id] = t
	nw.mu.Unlock()
	return t
}

// Partition cuts every link between nodes of different groups. Nodes in no
// group keep their links.
func (nw *Network) Partition(groups ...[]uint64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					nw.cut[[2]uint64{a, b}] = true
				}
			}
		}
	}
}

// Isolate cuts node id off from every other node.
func (nw *Network) Isolate(id uint64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for other := range nw.nodes {
		if other != id {
			nw.cut[[2]uint64{id, other}] = true
			nw.cut[[2]uint64{other, id}] = true
		}
	}
}

// Cut drops every message from one node to another (one direction).
func (nw *Network) Cut(from, to uint64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.cut[[2]uint64{from, to}] = true
}

// Drop makes the link from → to lose each message with probability p.
func (nw *Network) Drop(from, to uint64, p float64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.dropRate[[2]uint64{from, to}] = p
}

// Delay delays every message on the link from → to by d.
func (nw *Network) Delay(from, to uint64, d time.Duration) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.delay[[2]uint64{from, to}] = d
}

// Heal removes every cut, drop rate and delay.
func (nw *Network) Heal() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.cut = map[[2]uint64]bool{}
	nw.dropRate = map[[2]uint64]float64{}
	nw.delay = map[[2]uint64]time.Duration{}
}

// ReportDown tells every other node's handler that id's process is gone,
// as the TCP transport does when a peer's connections end and its address
// refuses new ones (transport.PeerDownReporter).
func (nw *Network) ReportDown(id uint64) {
	nw.mu.Lock()
	var others []*Transport
	for other, t := range nw.nodes {
		if other != id {
			others = append(others, t)
		}
	}
	nw.mu.Unlock()
	for _, t := range others {
		t.mu.Lock()
		h := t.h
		t.mu.Unlock()
		if r, ok := h.(interface{ ReportPeerDown(uint64) }); ok {
			r.ReportPeerDown(id)
		}
	}
}

// Stats returns how many messages were delivered and dropped so far.
func (nw *Network) Stats() (delivered, dropped uint64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.delivered, nw.dropped
}

// route decides the fate of one message: the destination, its delay, or
// nil if it is dropped.
func (nw *Network) route(from, to uint64) (*Transport, time.Duration) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	k := [2]uint64{from, to}
	dst := nw.nodes[to]
	if dst == nil || nw.cut[k] || (nw.dropRate[k] > 0 && nw.rng.Float64() < nw.dropRate[k]) {
		nw.dropped++
		return nil, 0
	}
	nw.delivered++
	return dst, nw.delay[k]
}

// Transport is one node's end of a Network.
type Transport struct {
	nw *Network
	id uint64

	// mu guards the fields below it.
	mu     sync.Mutex
	h      core.Handler
	links  map[uint64]*link
	closed bool

	stopc chan struct{}
	wg    sync.WaitGroup
}

type envelope struct {
	data []byte
	at   time.Time
}

type link struct {
	q chan envelope
}

var _ core.Transport = (*Transport)(nil)

// Start records the node's handler.
func (t *Transport) Start(h core.Handler) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.h = h
	return nil
}

// AddPeer is a no-op: the network routes by id.
func (t *Transport) AddPeer(uint64, string) {}

// RemovePeer drops the queue to a peer.
func (t *Transport) RemovePeer(uint64) {}

// Send queues data for a peer; it never blocks and drops when the link's
// queue is full or the link is cut.
func (t *Transport) Send(to uint64, data []byte) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	l := t.links[to]
	if l == nil {
		l = &link{q: make(chan envelope, linkQueue)}
		t.links[to] = l
		t.wg.Go(func() { t.deliver(to, l) })
	}
	h := t.h
	t.mu.Unlock()
	select {
	case l.q <- envelope{data: data, at: time.Now()}:
	default:
		if h != nil {
			h.ReportUnreachable(to)
		}
	}
}

// deliver runs one link: in order, after the link's delay.
func (t *Transport) deliver(to uint64, l *link) {
	for {
		select {
		case env := <-l.q:
			dst, d := t.nw.route(t.id, to)
			if dst == nil {
				continue
			}
			if wait := time.Until(env.at.Add(d)); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-timer.C:
				case <-t.stopc:
					timer.Stop()
					return
				}
			}
			dst.receive(t.id, env.data)
		case <-t.stopc:
			return
		}
	}
}

func (t *Transport) receive(from uint64, data []byte) {
	t.mu.Lock()
	h, closed := t.h, t.closed
	t.mu.Unlock()
	if h != nil && !closed {
		h.Receive(from, data)
	}
}

// SendSnapshot hands the stream straight to the peer's handler, unless the
// link is cut.
func (t *Transport) SendSnapshot(ctx context.Context, to uint64, header []byte, body io.Reader) error {
	dst, _ := t.nw.route(t.id, to)
	if dst == nil {
		return ErrUnreachable
	}
	dst.mu.Lock()
	h, closed := dst.h, dst.closed
	dst.mu.Unlock()
	if h == nil || closed {
		return ErrUnreachable
	}
	return h.ReceiveSnapshot(ctx, t.id, header, &cutReader{r: body, nw: t.nw, from: t.id, to: to})
}

// cutReader fails a snapshot stream when its link is cut mid-transfer.
type cutReader struct {
	r        io.Reader
	nw       *Network
	from, to uint64
}

func (c *cutReader) Read(p []byte) (int, error) {
	c.nw.mu.Lock()
	cut := c.nw.cut[[2]uint64{c.from, c.to}]
	c.nw.mu.Unlock()
	if cut {
		return 0, ErrUnreachable
	}
	return c.r.Read(p)
}

// Close stops the link goroutines. Idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.stopc)
	}
	t.mu.Unlock()
	t.wg.Wait()
	t.nw.mu.Lock()
	if t.nw.nodes[t.id] == t {
		delete(t.nw.nodes, t.id)
	}
	t.nw.mu.Unlock()
	return nil
}
