package zkwire

import (
	"testing"
	"time"
)

// TestLatencyFigures checks the min/avg/max the four-letter words report,
// and the Java-style average.
func TestLatencyFigures(t *testing.T) {
	var l latency
	l.reset()
	if lmin, avg, lmax := l.figures(); lmin != 0 || avg != "0.0" || lmax != 0 {
		t.Fatalf("empty: %d/%s/%d, want 0/0.0/0", lmin, avg, lmax)
	}
	now := time.Now()
	l.add(now.Add(-10 * time.Millisecond))
	l.add(now.Add(-40 * time.Millisecond))
	lmin, avg, lmax := l.figures()
	if lmin < 10 || lmin >= 40 || lmax < 40 || avg == "0.0" {
		t.Fatalf("figures %d/%s/%d after requests of 10 and 40 ms", lmin, avg, lmax)
	}
	l.reset()
	if lmin, avg, lmax := l.figures(); lmin != 0 || avg != "0.0" || lmax != 0 {
		t.Fatalf("after reset: %d/%s/%d", lmin, avg, lmax)
	}
}
