package accept

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// greeter writes "hi" and then holds the connection until closed.
type greeter struct {
	nc     net.Conn
	served *atomic.Int64
}

func (g *greeter) Serve() {
	g.served.Add(1)
	_, _ = g.nc.Write([]byte("hi"))
	_, _ = io.Copy(io.Discard, g.nc)
}

func (g *greeter) Close() { _ = g.nc.Close() }

// servePort serves a Port with limits on 127.0.0.1:0.
func servePort(t *testing.T, lim Limits) (*Port[*greeter], string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := New[*greeter](make(chan struct{}))
	p.Limits = lim
	served := new(atomic.Int64)
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln, func(nc net.Conn) *greeter { return &greeter{nc: nc, served: served} }) }()
	t.Cleanup(func() {
		p.Close()
		if err := <-done; err != ErrClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	return p, ln.Addr().String(), served
}

// greeted dials addr and reports whether the port served the connection
// (said hi) rather than closing it at once.
func greeted(t *testing.T, addr string) (net.Conn, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 2)
	_, err = io.ReadFull(c, b)
	return c, err == nil && string(b) == "hi"
}

// TestLimits checks the per-address and total caps: a connection beyond
// either is closed at once and counted, and a freed slot serves again.
func TestLimits(t *testing.T) {
	for _, tt := range []struct {
		name string
		lim  Limits
	}{{"per IP", Limits{PerIP: 3}}, {"total", Limits{Total: 3}}} {
		t.Run(tt.name, func(t *testing.T) {
			p, addr, _ := servePort(t, tt.lim)
			var held []net.Conn
			for range 3 {
				c, ok := greeted(t, addr)
				if !ok {
					t.Fatal("a connection within the cap was refused")
				}
				held = append(held, c)
			}
			if _, ok := greeted(t, addr); ok {
				t.Fatal("a fourth connection was served")
			}
			if p.Refused() != 1 {
				t.Fatalf("refused %d, want 1", p.Refused())
			}
			_ = held[0].Close()
			deadline := time.Now().Add(10 * time.Second)
			for p.Count() != 2 {
				if time.Now().After(deadline) {
					t.Fatal("the closed connection was not forgotten")
				}
				time.Sleep(time.Millisecond)
			}
			if _, ok := greeted(t, addr); !ok {
				t.Fatal("a freed slot did not serve")
			}
		})
	}
}

// TestAcceptSurvivesEMFILE lowers the process's descriptor limit and fills
// it, so the port's accept fails with EMFILE while a client waits in the
// backlog: the port reports it is not accepting, and serves the waiting
// client once descriptors are free again. Before, the first EMFILE ended
// the accept loop for good while the socket kept listening.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	p, addr, served := servePort(t, Limits{})
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	var fillers []*os.File
	restore := func() {
		for _, f := range fillers {
			_ = f.Close()
		}
		fillers = nil
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}
	defer restore()
	low := old
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatalf("lower RLIMIT_NOFILE: %v", err)
	}
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break // EMFILE: the table is full
		}
		fillers = append(fillers, f)
	}
	if len(fillers) == 0 {
		t.Fatal("could not fill the descriptor table")
	}
	_ = fillers[len(fillers)-1].Close() // one free descriptor, for the client's socket
	fillers = fillers[:len(fillers)-1]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for p.Accepting() {
		if time.Now().After(deadline) {
			t.Fatal("the port never failed to accept with the descriptor table full")
		}
		time.Sleep(time.Millisecond)
	}
	restore()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "hi" {
		t.Fatalf("the waiting client was not served after descriptors freed: %q, %v", b, err)
	}
	if !p.Accepting() || served.Load() != 1 {
		t.Fatalf("accepting %v, served %d", p.Accepting(), served.Load())
	}
}
