package memnet_test

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"testing/synctest"

	"github.com/grovekit/grove/internal/memnet"
)

func TestDialAcceptAndRefuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := memnet.New()
		l, err := nw.Listen("")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nw.Listen(l.Addr().String()); !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("second listen at %s: %v", l.Addr(), err)
		}
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.Copy(c, c) // echo
			_ = c.Close()
		}()
		c, err := nw.Dial(t.Context(), l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo %q %v", buf, err)
		}
		_ = c.Close()
		_ = l.Close()
		if _, err := l.Accept(); !errors.Is(err, memnet.ErrClosed) {
			t.Fatalf("accept after close: %v", err)
		}
		if _, err := nw.Dial(context.Background(), l.Addr().String()); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial a closed address: %v", err)
		}
		if _, err := nw.Listen(l.Addr().String()); err != nil { // the address is free again
			t.Fatal(err)
		}
	})
}
