package transport_test

import (
	"context"
	"fmt"
	"io"

	"github.com/grovekit/grove/transport"
)

// printer is a core.Handler that hands each message to a channel.
type printer chan []byte

func (p printer) Receive(_ uint64, data []byte) {
	select {
	case p <- data:
	default: // Receive must not block; raft tolerates the loss
	}
}

func (p printer) ReceiveSnapshot(context.Context, uint64, []byte, io.Reader) error { return nil }

func (p printer) ReportUnreachable(uint64) {}

// Two nodes on loopback: node 1 sends node 2 a message.
func Example() {
	start := func(id uint64) (*transport.TCP, printer) {
		cfg := transport.DefaultConfig()
		cfg.ID = id
		cfg.ListenAddr = "127.0.0.1:0"
		tr, err := transport.New(cfg)
		if err != nil {
			panic(err)
		}
		h := make(printer, 1)
		if err := tr.Start(h); err != nil {
			panic(err)
		}
		return tr, h
	}
	n1, _ := start(1)
	defer func() { _ = n1.Close() }()
	n2, inbox := start(2)
	defer func() { _ = n2.Close() }()

	n1.AddPeer(2, n2.Addr().String())
	n1.Send(2, []byte("hello, node 2"))
	fmt.Println(string(<-inbox))
	// Output: hello, node 2
}
