package zkwire

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// latency keeps ZooKeeper's request latency figures: the minimum, average
// and maximum time, in milliseconds, from a request's arrival to its
// answer, as srvr, stat, mntr and cons report them. srst (a server's) and
// crst (each connection's) reset them. Every answer records into two of
// them (its connection's and the server's, shared by all connections), so
// it takes no lock; a reset racing a record may keep that one figure.
type latency struct {
	count, sum       atomic.Int64
	minimum, maximum atomic.Int64 // minimum is math.MaxInt64 until a record: call reset first
	last             atomic.Int64
}

// add records one request that arrived at start.
func (l *latency) add(start time.Time) {
	ms := time.Since(start).Milliseconds()
	l.count.Add(1)
	l.sum.Add(ms)
	l.last.Store(ms)
	for cur := l.minimum.Load(); ms < cur && !l.minimum.CompareAndSwap(cur, ms); cur = l.minimum.Load() {
	}
	for cur := l.maximum.Load(); ms > cur && !l.maximum.CompareAndSwap(cur, ms); cur = l.maximum.Load() {
	}
}

// reset forgets every figure.
func (l *latency) reset() {
	l.count.Store(0)
	l.sum.Store(0)
	l.minimum.Store(math.MaxInt64)
	l.maximum.Store(0)
	l.last.Store(0)
}

// bounds returns the minimum and maximum, 0 and 0 with nothing recorded.
func (l *latency) bounds() (minimum, maximum int64) {
	minimum = l.minimum.Load()
	if minimum == math.MaxInt64 {
		minimum = 0
	}
	return minimum, l.maximum.Load()
}

// figures returns minimum, average and maximum, the average as ZooKeeper
// prints it (a Java double rounded to four decimals: "0.0", "1.2542").
func (l *latency) figures() (minimum int64, avg string, maximum int64) {
	minimum, maximum = l.bounds()
	a := 0.0
	if n := l.count.Load(); n > 0 {
		a = math.Round(float64(l.sum.Load())/float64(n)*1e4) / 1e4
	}
	s := strconv.FormatFloat(a, 'f', -1, 64)
	if a == math.Trunc(a) {
		s += ".0"
	}
	return minimum, s, maximum
}

// connFigures returns the figures as cons prints a connection's: the
// average a whole number of milliseconds (ZooKeeper's per-connection
// average is a long; go-zookeeper's FLWCons parses it so).
func (l *latency) connFigures() (minimum, avg, maximum int64) {
	minimum, maximum = l.bounds()
	if n := l.count.Load(); n > 0 {
		avg = l.sum.Load() / n
	}
	return minimum, avg, maximum
}

// lastMs returns the latency of the latest request.
func (l *latency) lastMs() int64 { return l.last.Load() }
