package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/server"
)

// clusterSize is the number of nodes: the smallest cluster that survives
// the loss of one.
const clusterSize = 3

// node is one server of the demo cluster with the config it was started
// with, kept so that a killed node can come back from its data dir on the
// same addresses.
type node struct {
	name string
	cfg  server.Config

	mu  sync.Mutex
	srv *server.Server // nil while the node is down
}

// server returns the running server, nil while the node is down.
func (n *node) server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// cluster is the demo's three in-process nodes.
type cluster struct {
	nodes []*node
}

// startCluster starts nodes n1..n3 under dir on free loopback ports. Each
// Start blocks until the others are seen in gossip, so they start
// together. ctx bounds the start.
func startCluster(ctx context.Context, dir string, logger *slog.Logger) (*cluster, error) {
	c := &cluster{}
	var seeds []string
	for i := range clusterSize {
		gossip, err := freeAddr()
		if err != nil {
			return nil, err
		}
		seeds = append(seeds, gossip)
		c.nodes = append(c.nodes, &node{name: fmt.Sprintf("n%d", i+1), cfg: server.Config{
			Name:            fmt.Sprintf("n%d", i+1),
			DataDir:         filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			GossipAddr:      gossip,
			BootstrapExpect: clusterSize,
			Core:            coreConfig(),
			Logger:          logger,
		}})
	}
	var wg sync.WaitGroup
	errs := make([]error, clusterSize)
	for i, n := range c.nodes {
		n.cfg.Join = seeds
		wg.Go(func() { errs[i] = n.start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// coreConfig tunes the engine for the demo: the default 50ms tick and
// 500ms election timeout, and session timeouts down to one second, so a
// dead client's session expires quickly.
func coreConfig() core.Config {
	c := core.DefaultConfig()
	c.MinSessionTimeout = time.Second
	return c
}

// start starts the node. On its first start it picks free ports for every
// address but gossip (the others' seed), again if one is taken before the
// listen; a restart uses the same addresses as before.
func (n *node) start(ctx context.Context) error {
	first := n.cfg.PeerAddr == ""
	for try := 0; ; try++ {
		if first {
			addrs := make([]string, 4)
			for i := range addrs {
				a, err := freeAddr()
				if err != nil {
					return err
				}
				addrs[i] = a
			}
			n.cfg.PeerAddr, n.cfg.HTTPAddr, n.cfg.ClientAddr, n.cfg.ZKAddr = addrs[0], addrs[1], addrs[2], addrs[3]
		}
		s, err := server.Start(ctx, n.cfg)
		if err == nil {
			n.mu.Lock()
			n.srv = s
			n.mu.Unlock()
			return nil
		}
		if !first || try == 2 || !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("start %s: %w", n.name, err)
		}
	}
}

// kill stops the node as a crash would: no goodbye to the others, it stays
// a member of the cluster and keeps its data dir.
func (n *node) kill() error {
	n.mu.Lock()
	s := n.srv
	n.srv = nil
	n.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Stop()
}

// freeAddr returns a loopback address whose port was free a moment ago,
// for TCP and UDP both (gossip uses the same port for each).
func freeAddr() (string, error) {
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		_ = ln.Close()
		if err == nil {
			_ = pc.Close()
			return addr, nil
		}
	}
	return "", errors.New("no free loopback port for TCP and UDP")
}

// clientAddrs returns the native client ports of every node, up or not:
// sessions try them in turn.
func (c *cluster) clientAddrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.cfg.ClientAddr)
	}
	return out
}

// leader returns the node leading raft and its status, nil if there is
// none right now. Every running node must name the same leader: while one
// still believes in a deposed leader, the answer is "none yet".
func (c *cluster) leader() (*node, server.StatusReply) {
	var lead *node
	var leadSt server.StatusReply
	agreed := ""
	for _, n := range c.nodes {
		s := n.server()
		if s == nil {
			continue
		}
		st := s.Status()
		if st.Leader == "" || agreed != "" && st.Leader != agreed {
			return nil, server.StatusReply{}
		}
		agreed = st.Leader
		if st.Name == st.Leader && st.Role == string(core.RoleLeader) {
			lead, leadSt = n, st
		}
	}
	return lead, leadSt
}

// waitLeader waits until every running node agrees on a leader.
func (c *cluster) waitLeader(ctx context.Context) (*node, server.StatusReply, error) {
	var n *node
	var st server.StatusReply
	err := waitUntil(ctx, "a raft leader every node agrees on", func() bool {
		n, st = c.leader()
		return n != nil
	})
	return n, st, err
}

// stop stops every node as a crash would (a graceful leave would shrink
// the cluster node by node, for nothing: it is about to be deleted).
func (c *cluster) stop() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() { _ = n.kill() })
	}
	wg.Wait()
}

// waitUntil polls cond until it holds or ctx ends; what names the
// condition in the error.
func waitUntil(ctx context.Context, what string, cond func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, context.Cause(ctx))
		}
	}
	return nil
}
