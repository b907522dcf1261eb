package zkwire

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// latency keeps ZooKeeper's request latency figures: the minimum, average
// and maximum time, in milliseconds, from a request's arrival to its
// answer, as srvr, stat, mntr and cons report them. srst (a server's) and
// crst (each connection's) reset them.
type latency struct {
	mu               sync.Mutex
	count, sum       int64
	minimum, maximum int64
	last             int64
}

// add records one request that arrived at start.
func (l *latency) add(start time.Time) {
	ms := time.Since(start).Milliseconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count == 0 || ms < l.minimum {
		l.minimum = ms
	}
	l.maximum = max(l.maximum, ms)
	l.count++
	l.sum += ms
	l.last = ms
}

// reset forgets every figure.
func (l *latency) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count, l.sum, l.minimum, l.maximum, l.last = 0, 0, 0, 0, 0
}

// figures returns minimum, average and maximum, the average as ZooKeeper
// prints it (a Java double rounded to four decimals: "0.0", "1.2542").
func (l *latency) figures() (minimum int64, avg string, maximum int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := 0.0
	if l.count > 0 {
		a = math.Round(float64(l.sum)/float64(l.count)*1e4) / 1e4
	}
	s := strconv.FormatFloat(a, 'f', -1, 64)
	if a == math.Trunc(a) {
		s += ".0"
	}
	return l.minimum, s, l.maximum
}

// connFigures returns the figures as cons prints a connection's: the
// average a whole number of milliseconds (ZooKeeper's per-connection
// average is a long; go-zookeeper's FLWCons parses it so).
func (l *latency) connFigures() (minimum, avg, maximum int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count > 0 {
		avg = l.sum / l.count
	}
	return l.minimum, avg, l.maximum
}

// lastMs returns the latency of the latest request.
func (l *latency) lastMs() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}
