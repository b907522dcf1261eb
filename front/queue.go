package front

import "sync"

// outQueue is a connection's ordered queue of messages to send: replies
// and events, pushed by several goroutines, taken by the writer.
type outQueue struct {
	mu    sync.Mutex
	items [][]byte
	max   int
	wake  chan struct{}
	shut  bool // no more messages
	drain bool // on shut, send what is queued first (a final error)
}

func (q *outQueue) init(max int) {
	q.max = max
	q.wake = make(chan struct{}, 1)
}

func (q *outQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues msg. It returns false if the queue is full (msg dropped); a
// shut queue takes nothing but reports true.
func (q *outQueue) push(msg []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shut {
		return true
	}
	if len(q.items) >= q.max {
		return false
	}
	q.items = append(q.items, msg)
	q.signal()
	return true
}

// pushFinal queues a last message beyond the cap and shuts the queue; the
// writer sends what is queued, then stops.
func (q *outQueue) pushFinal(msg []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shut {
		return
	}
	q.items = append(q.items, msg)
	q.shut, q.drain = true, true
	q.signal()
}

// close shuts the queue, dropping what is queued unless a final message
// asked for draining.
func (q *outQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shut = true
	q.signal()
}

// take waits for messages and returns them all; last is true when the
// queue is shut and nothing more will come.
func (q *outQueue) take() (batch [][]byte, last bool) {
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
