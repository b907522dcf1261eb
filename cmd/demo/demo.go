package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
)

// Time limits. The scenes take seconds; the limits only turn a hang into
// a clear failure.
const (
	startTimeout = 60 * time.Second
	sceneTimeout = 90 * time.Second
)

// demo is one run: the cluster, the narration, the seeded randomness and
// the actors still to be closed.
type demo struct {
	out   *narrator
	c     *cluster
	rng   *rand.Rand // used by the scene goroutine only; actors get their own
	round int

	mu     sync.Mutex
	actors map[*actor]bool // open sessions
}

// scene is one part of the demo.
type scene struct {
	name string
	play func(ctx context.Context) error
}

// play runs the demo: the cluster, every scene of every round, and with
// --keep the wait for ctx to end. It stops the cluster and removes its
// files before it returns.
func play(ctx context.Context, o options, out *narrator, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "grove-demo-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	logPath := filepath.Join(dir, "servers.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	var logw io.Writer = logf
	if o.verbose {
		logw = io.MultiWriter(logf, stderr)
	}
	logger := slog.New(slog.NewTextHandler(logw, nil))

	out.say("Grove demo, seed %d (run it again with --seed %d)", o.seed, o.seed)
	out.say("Starting nodes n1, n2, n3 in this process, on loopback ports, data under %s.", dir)
	out.say("They find each other by gossip and form a raft cluster: every write is")
	out.say("committed by a majority (2 of 3) before it is acknowledged.")
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	c, err := startCluster(sctx, dir, logger)
	if err != nil {
		return err
	}
	defer c.stop()
	lead, st, err := c.waitLeader(sctx)
	if err != nil {
		return err
	}
	out.milestone("cluster up: %d nodes, raft leader %s (term %d)", clusterSize, lead.name, st.Term)

	d := &demo{out: out, c: c, rng: rand.New(rand.NewPCG(o.seed, o.seed>>1|1)), actors: map[*actor]bool{}}
	defer d.closeAll()
	for d.round = 1; d.round <= o.rounds; d.round++ {
		if o.rounds > 1 {
			out.blank()
			out.say("---- round %d of %d ----", d.round, o.rounds)
		}
		for _, sc := range []scene{{"lock", d.lockScene}, {"election", d.electionScene},
			{"config", d.configScene}, {"queue", d.queueScene}, {"failover", d.failoverScene}} {
			out.blank()
			sctx, cancel := context.WithTimeout(ctx, sceneTimeout)
			err := sc.play(sctx)
			cancel()
			if err != nil {
				return fmt.Errorf("%s scene: %w", sc.name, err)
			}
		}
	}
	if o.keep {
		d.keep(ctx, logPath)
	}
	return nil
}

// keep prints how to reach the cluster and waits for ctx to end.
func (d *demo) keep(ctx context.Context, logPath string) {
	d.out.blank()
	d.out.milestone("ready: the cluster stays up until Ctrl-C")
	var https []string
	for _, n := range d.c.nodes {
		d.out.say("%s: client %s  zookeeper %s  http %s", n.name, n.cfg.ClientAddr, n.cfg.ZKAddr, n.cfg.HTTPAddr)
		https = append(https, n.cfg.HTTPAddr)
	}
	d.out.say("Look around with the grove CLI (go build ./cmd/grove, or use go run ./cmd/grove):")
	d.out.say("  grove --servers %s ls -R /demo", strings.Join(d.c.clientAddrs(), ","))
	d.out.say("  grove --servers %s watch --recursive /demo", d.c.nodes[0].cfg.ClientAddr)
	d.out.say("  grove status --http %s", https[0])
	d.out.say("  grove members --http %s", https[0])
	d.out.say("  curl http://%s/status", https[0])
	d.out.say("Any ZooKeeper client works on the zookeeper ports. Server logs: %s", logPath)
	<-ctx.Done()
	d.out.say("stopping")
}

// path returns the znode path of one scene's data in the current round.
func (d *demo) path(elem ...string) string {
	return fmt.Sprintf("/demo/round-%d/%s", d.round, strings.Join(elem, "/"))
}

// dial opens one session per name, each its own actor.
func (d *demo) dial(ctx context.Context, timeout time.Duration, names ...string) ([]*actor, error) {
	var out []*actor
	for _, name := range names {
		p := &plug{}
		s, err := client.Dial(ctx, d.c.clientAddrs(), client.WithTimeout(timeout), client.WithDialer(p.dial))
		if err != nil {
			d.close(out...)
			return nil, fmt.Errorf("%s: open a session: %w", name, err)
		}
		a := &actor{name: name, s: s, plug: p, rng: rand.New(rand.NewPCG(d.rng.Uint64(), d.rng.Uint64()))}
		d.mu.Lock()
		d.actors[a] = true
		d.mu.Unlock()
		out = append(out, a)
	}
	return out, nil
}

// close closes the sessions of actors, concurrently.
func (d *demo) close(actors ...*actor) {
	var wg sync.WaitGroup
	for _, a := range actors {
		d.mu.Lock()
		open := d.actors[a]
		delete(d.actors, a)
		d.mu.Unlock()
		if open {
			wg.Go(a.close)
		}
	}
	wg.Wait()
}

// closeAll closes every session still open.
func (d *demo) closeAll() {
	d.mu.Lock()
	var all []*actor
	for a := range d.actors {
		all = append(all, a)
	}
	d.mu.Unlock()
	d.close(all...)
}

// ensure creates path with data, and its missing parents; a path that
// exists already is left as it is.
func ensure(ctx context.Context, s *client.Session, path string, data []byte) error {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := range parts {
		p := "/" + strings.Join(parts[:i+1], "/")
		var payload []byte
		if i == len(parts)-1 {
			payload = data
		}
		_, err := s.Create(ctx, p, payload, grove.ModePersistent, grove.OpenACLUnsafe)
		if err != nil && !errors.Is(err, grove.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}

// since returns the seconds from t to now, for narration.
func since(t time.Time) float64 { return time.Since(t).Seconds() }
