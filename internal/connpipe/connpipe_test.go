package connpipe

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/grovekit/grove/internal/fsm"
)

// The in-flight cap is tied to the node's result window, not a copied
// constant: a request a client resends must still be answerable.
func TestLimitsFollowTheResultWindow(t *testing.T) {
	var l Limits
	if err := l.Defaults("test"); err != nil || l.MaxInFlight != 512 || l.MaxQueued != 1<<16 || l.BehindWait <= 0 || l.Logger == nil {
		t.Fatalf("defaults %+v %v", l, err)
	}
	if MaxInFlightLimit >= fsm.ResultWindow {
		t.Fatalf("MaxInFlightLimit %d is not below the result window %d", MaxInFlightLimit, fsm.ResultWindow)
	}
	ok := Limits{MaxInFlight: MaxInFlightLimit}
	if err := ok.Defaults("test"); err != nil {
		t.Fatalf("the limit itself refused: %v", err)
	}
	over := Limits{MaxInFlight: MaxInFlightLimit + 1}
	if err := over.Defaults("front"); err == nil || !strings.HasPrefix(err.Error(), "front: MaxInFlight") {
		t.Fatalf("MaxInFlight beyond the window: %v", err)
	}
}

type fakeConn struct{ done chan struct{} }

// A session taken over waits for its old connection to go, but no longer
// than the new connection's ctx (zkwire once waited without one).
func TestAttachWaitsForTheOldConnectionWithinCtx(t *testing.T) {
	var s Sessions[*fakeConn]
	drops := 0
	a, b := &fakeConn{done: make(chan struct{})}, &fakeConn{done: make(chan struct{})}
	stop := func(old *fakeConn) <-chan struct{} { return old.done }
	attach := func(ctx context.Context, c *fakeConn) error {
		return s.attach(ctx, 7, c, stop, func() { drops++ })
	}
	if err := attach(t.Context(), a); err != nil || s.Len() != 1 {
		t.Fatalf("first attach: %v, %d sessions", err, s.Len())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := attach(ctx, b); !errors.Is(err, context.Canceled) {
		t.Fatalf("takeover from a connection that never ends: %v", err)
	}
	close(a.done)
	if err := attach(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if s.detach(7, a) {
		t.Fatal("the replaced connection detached its successor")
	}
	if !s.detach(7, b) || s.Len() != 0 {
		t.Fatalf("detach: %d sessions left", s.Len())
	}
	if drops != 2 {
		t.Fatalf("watches dropped %d times, want once per completed attach", drops)
	}
}
