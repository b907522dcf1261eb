// Package exampletest starts the in-process cluster the recipes' runnable
// examples use: three nodes, each served on a loopback client port.
package exampletest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/core/memtransport"
	"github.com/grovekit/grove/front"
)

// Cluster is a running example cluster.
type Cluster struct {
	Addrs   []string
	closers []func()
	dir     string
}

// Start starts the cluster; Stop it when done.
func Start() *Cluster {
	dir, err := os.MkdirTemp("", "grove-example-")
	if err != nil {
		panic(err)
	}
	c := &Cluster{dir: dir}
	nw := memtransport.NewNetwork()
	peers := []core.Peer{{ID: 1, Addr: "m1"}, {ID: 2, Addr: "m2"}, {ID: 3, Addr: "m3"}}
	for _, p := range peers {
		cfg := core.DefaultConfig()
		cfg.ID, cfg.Peers, cfg.Transport = p.ID, peers, nw.Transport(p.ID)
		cfg.DataDir = filepath.Join(dir, fmt.Sprint(p.ID))
		cfg.TickInterval = 10 * time.Millisecond
		n, err := core.StartNode(context.Background(), cfg)
		if err != nil {
			panic(err)
		}
		srv, err := front.New(front.Config{Node: n})
		if err != nil {
			panic(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		served := make(chan struct{})
		go func() { _ = srv.Serve(ln); close(served) }()
		c.Addrs = append(c.Addrs, ln.Addr().String())
		c.closers = append(c.closers, func() { _ = srv.Close(); <-served; _ = n.Close() })
	}
	return c
}

// Session dials a session on the cluster.
func (c *Cluster) Session() *client.Session {
	s, err := client.Dial(context.Background(), c.Addrs, client.WithTimeout(5*time.Second))
	if err != nil {
		panic(err)
	}
	return s
}

// Stop stops the cluster and removes its files.
func (c *Cluster) Stop() {
	for _, f := range c.closers {
		f()
	}
	_ = os.RemoveAll(c.dir)
}
