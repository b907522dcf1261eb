package connpipe

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

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

// A session taken over waits for its old connection to go before it
// drops the session's watches, but no longer than the new connection's
// ctx (zkwire once waited without one). In a synctest bubble, so that
// "still waiting" is a fact, not a guess.
func TestAttachWaitsForTheOldConnectionWithinCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Sessions[*fakeConn]
		drops := 0
		a, b, c := &fakeConn{done: make(chan struct{})}, &fakeConn{done: make(chan struct{})}, &fakeConn{done: make(chan struct{})}
		stop := func(old *fakeConn) <-chan struct{} { return old.done }
		attach := func(ctx context.Context, conn *fakeConn) error {
			return s.attach(ctx, 7, conn, stop, func() { drops++ })
		}
		if err := attach(t.Context(), a); err != nil || s.Len() != 1 || drops != 1 {
			t.Fatalf("first attach: %v, %d sessions, %d drops", err, s.Len(), drops)
		}
		// a never ends: b's takeover gives up with its ctx.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := attach(ctx, b); !errors.Is(err, context.Canceled) || drops != 1 {
			t.Fatalf("takeover from a connection that never ends: %v (%d drops)", err, drops)
		}
		// c takes over from b: it waits until b is gone, then drops.
		returned := make(chan error, 1)
		go func() { returned <- attach(t.Context(), c) }()
		synctest.Wait()
		select {
		case err := <-returned:
			t.Fatalf("attach returned (%v) while the old connection was still open", err)
		default:
		}
		close(b.done)
		if err := <-returned; err != nil || drops != 2 {
			t.Fatalf("takeover: %v (%d drops)", err, drops)
		}
		if s.detach(7, b) {
			t.Fatal("the replaced connection detached its successor")
		}
		if !s.detach(7, c) || s.Len() != 0 {
			t.Fatalf("detach: %d sessions left", s.Len())
		}
	})
}
