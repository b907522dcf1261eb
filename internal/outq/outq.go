// Package outq is a connection's ordered queue of outgoing messages:
// replies and events pushed by several goroutines, taken in batches by one
// writer, bounded, with a final message that is sent before the end.
package outq

import "sync"

// Queue is a connection's ordered queue of messages to send: replies
// and events, pushed by several goroutines, taken by the writer.
type Queue struct {
	mu    sync.Mutex
	items [][]byte
	max   int
	wake  chan struct{}
	shut  bool // no more messages
	drain bool // on shut, send what is queued first (a final error)
	// holding keeps pushed messages aside (held) until Release.
	holding bool
	held    []heldMsg
}

// heldMsg is a message pushed during a hold, with the zxid of the change
// it reports (0 for a message that reports none).
type heldMsg struct {
	msg  []byte
	zxid uint64
}

// Init prepares the queue to hold at most max messages.
func (q *Queue) Init(max int) {
	q.max = max
	q.wake = make(chan struct{}, 1)
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Push queues msg. It returns false if the queue is full (msg dropped); a
// shut queue takes nothing but reports true.
func (q *Queue) Push(msg []byte) bool { return q.PushEvent(msg, 0) }

// PushEvent queues msg, the notification of a change at zxid. During a
// hold, Release puts it before or after the read's reply by that zxid.
func (q *Queue) PushEvent(msg []byte, zxid uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shut {
		return true
	}
	if len(q.items)+len(q.held) >= q.max {
		return false
	}
	if q.holding {
		q.held = append(q.held, heldMsg{msg, zxid})
		return true
	}
	q.items = append(q.items, msg)
	q.signal()
	return true
}

// Hold keeps messages pushed from now on aside until Release. A server
// holds while it serves a read that sets a watch: an event the watch fires
// must not overtake the read's reply, or a client that registers watchers
// on replies would miss it.
func (q *Queue) Hold() {
	q.mu.Lock()
	q.holding = true
	q.mu.Unlock()
}

// Release queues msg, the reply of a read of the state at zxid, and what
// was held, and ends the hold: held messages of changes at or before zxid
// (the read saw them) go before the reply, the others after it, each group
// in the order pushed. A client then sees the notification of every change
// a reply reflects before that reply, as ZooKeeper promises, and no
// notification of a watch the read set before the reply that set it. It
// returns false if the queue is full (msg dropped).
func (q *Queue) Release(msg []byte, zxid uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.holding = false
	held := q.held
	q.held = nil
	if q.shut {
		return true
	}
	if len(q.items)+len(held) >= q.max {
		return false
	}
	var after [][]byte
	for _, h := range held {
		if h.zxid <= zxid {
			q.items = append(q.items, h.msg)
		} else {
			after = append(after, h.msg)
		}
	}
	q.items = append(append(q.items, msg), after...)
	q.signal()
	return true
}

// PushFinal queues a last message beyond the cap and shuts the queue; the
// writer sends what is queued, then stops.
func (q *Queue) PushFinal(msg []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shut {
		return
	}
	q.items = append(q.items, msg)
	q.shut, q.drain = true, true
	q.signal()
}

// Close shuts the queue, dropping what is queued unless a final message
// asked for draining.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shut = true
	q.signal()
}

// Take waits for messages and returns them all; last is true when the
// queue is shut and nothing more will come.
func (q *Queue) Take() (batch [][]byte, last bool) {
	for {
		q.mu.Lock()
		if q.shut {
			if q.drain {
				batch = q.items
			}
			q.items = nil
			q.mu.Unlock()
			return batch, true
		}
		if len(q.items) > 0 {
			batch = q.items
			q.items = nil
			q.mu.Unlock()
			return batch, false
		}
		q.mu.Unlock()
		<-q.wake
	}
}
