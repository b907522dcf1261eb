package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/grovekit/grove/internal/mpguard"
)

// Roles a node announces.
const (
	RoleVoter   = "voter"   // may vote once added
	RoleLearner = "learner" // stays a non-voting learner (read scale-out)
)

// Member states.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// Meta is what a node gossips about itself.
type Meta struct {
	Name       string `msgpack:"n"`
	RaftID     uint64 `msgpack:"i"`
	PeerAddr   string `msgpack:"p"`
	ClientAddr string `msgpack:"c,omitempty"`
	ZKAddr     string `msgpack:"z,omitempty"`
	HTTPAddr   string `msgpack:"h,omitempty"`
	Role       string `msgpack:"r"`
	// Bootstrapped is true once the node holds raft state, so a fresh node
	// never bootstraps a second cluster beside an existing one.
	Bootstrapped bool `msgpack:"b,omitempty"`
	// Leaving is set just before a graceful leave, so the others record
	// the departure as "left" rather than "dead".
	Leaving bool `msgpack:"l,omitempty"`
}

// Member is a node as gossip sees it.
type Member struct {
	Meta
	GossipAddr string
	State      string
	Since      time.Time // when State last changed
}

// Config configures gossip. Start copies it.
type Config struct {
	// BindAddr is the host:port to gossip on (UDP and TCP). Port 0 picks a
	// free port (see Gossip.Addr).
	BindAddr string
	// Join lists seed addresses (host:port); Start keeps retrying them in
	// the background until one answers.
	Join []string
	// Meta is this node's metadata; Meta.Name must be unique.
	Meta Meta
	// SecretKey, if set (16, 24 or 32 bytes), encrypts gossip with AES-GCM;
	// every member needs the same key.
	SecretKey []byte
	// ProbeInterval is memberlist's failure-detector probe period. Default
	// 500ms, tuned for a LAN or one machine.
	ProbeInterval time.Duration
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
}

// ErrBootstrapConflict is returned by WaitBootstrap when more voter-eligible
// fresh nodes than expected are visible, so no single initial set exists.
var ErrBootstrapConflict = errors.New("membership: more fresh voters than bootstrap-expect")

// ErrExistingCluster is returned by WaitBootstrap when a member already holds
// raft state: the node must join that cluster instead of bootstrapping.
var ErrExistingCluster = errors.New("membership: a cluster already exists")

// Gossip is a running memberlist member. Safe for concurrent use.
type Gossip struct {
	cfg Config
	ml  *memberlist.Memberlist
	log *slog.Logger

	// mu guards the fields below it.
	mu      sync.Mutex
	meta    Meta
	members map[string]*Member
	changed chan struct{} // closed and replaced on every change

	stopc chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// Start joins (or forms) the gossip pool. Seeds are contacted in the
// background until one answers.
func Start(cfg Config) (*Gossip, error) {
	if cfg.Meta.Name == "" || cfg.Meta.RaftID == 0 {
		return nil, errors.New("membership: Meta.Name and Meta.RaftID are required")
	}
	if cfg.Meta.Role == "" {
		cfg.Meta.Role = RoleVoter
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, portStr, err := net.SplitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("membership: gossip address %q: %w", cfg.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("membership: gossip port %q: %w", portStr, err)
	}
	g := &Gossip{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "gossip"),
		meta:    cfg.Meta,
		members: map[string]*Member{},
		changed: make(chan struct{}),
		stopc:   make(chan struct{}),
	}
	mc := memberlist.DefaultLocalConfig()
	mc.Name = cfg.Meta.Name
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeInterval / 2
	mc.GossipInterval = 50 * time.Millisecond
	mc.PushPullInterval = 5 * time.Second
	mc.SuspicionMult = 2
	mc.SecretKey = cfg.SecretKey
	mc.Delegate = delegate{g}
	mc.Events = events{g}
	mc.Logger = slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", cfg.BindAddr, err)
	}
	g.ml = ml
	if len(cfg.Join) > 0 {
		g.wg.Go(g.joinLoop)
	}
	return g, nil
}

// Addr returns the address gossip listens on.
func (g *Gossip) Addr() string {
	n := g.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// joinLoop contacts the seeds until one other than this node answers
// (backoff up to 2s), then every 10s re-contacts seeds that are not alive
// members, so a node that restarted into a gossip island of its own finds
// the others again.
func (g *Gossip) joinLoop() {
	backoff := 50 * time.Millisecond
	joined := false
	for {
		seeds := g.missingSeeds()
		if len(seeds) > 0 {
			n, err := g.ml.Join(seeds)
			if err == nil && n > 0 && !joined {
				g.log.Info("joined gossip", "contacted", n)
				joined = true
			} else if err != nil {
				g.log.Debug("gossip join failed, retrying", "err", err)
			}
		} else {
			joined = true
		}
		wait := 10 * time.Second
		if !joined {
			wait = backoff
			backoff = min(2*backoff, 2*time.Second)
		}
		select {
		case <-time.After(wait):
		case <-g.stopc:
			return
		}
	}
}

// missingSeeds returns the seeds that are neither this node nor an alive
// member.
func (g *Gossip) missingSeeds() []string {
	self := g.Addr()
	alive := map[string]bool{}
	for _, m := range g.Members() {
		if m.State == StateAlive {
			alive[m.GossipAddr] = true
		}
	}
	var out []string
	for _, s := range g.cfg.Join {
		if s != self && !alive[s] {
			out = append(out, s)
		}
	}
	return out
}

// UpdateMeta changes this node's metadata and gossips it.
func (g *Gossip) UpdateMeta(fn func(*Meta)) error {
	g.mu.Lock()
	fn(&g.meta)
	g.mu.Unlock()
	return g.ml.UpdateNode(time.Second)
}

// LocalMeta returns this node's current metadata.
func (g *Gossip) LocalMeta() Meta {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.meta
}

// Members returns every member gossip has seen, dead and left ones
// included, sorted by name.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Changed returns a channel closed at the next membership change.
func (g *Gossip) Changed() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

func (g *Gossip) update(n *memberlist.Node, state string) {
	var meta Meta
	if err := mpguard.Unmarshal(n.Meta, &meta); err != nil {
		g.log.Warn("ignoring member with undecodable metadata", "member", n.Name, "err", err)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.members[n.Name]
	if m == nil {
		m = &Member{}
		g.members[n.Name] = m
	}
	if m.State != state {
		m.Since = time.Now()
	}
	m.Meta = meta
	m.GossipAddr = n.Address()
	m.State = state
	close(g.changed)
	g.changed = make(chan struct{})
}

// Leave announces a graceful departure and waits up to timeout for it to
// spread.
func (g *Gossip) Leave(timeout time.Duration) error {
	if err := g.UpdateMeta(func(m *Meta) { m.Leaving = true }); err != nil {
		g.log.Warn("announce leaving", "err", err)
	}
	return g.ml.Leave(timeout)
}

// Close stops gossip (without a leave message) and waits for its
// goroutines. Idempotent.
func (g *Gossip) Close() error {
	var err error
	g.once.Do(func() {
		close(g.stopc)
		g.wg.Wait()
		err = g.ml.Shutdown()
	})
	return err
}

// bootstrapSettle is how long the view of members must stay unchanged
// before WaitBootstrap trusts it.
const bootstrapSettle = 500 * time.Millisecond

// WaitBootstrap waits until exactly expect fresh voter-eligible nodes
// (this one included) are alive in gossip, and returns their metadata
// sorted by raft ID: the initial voter set every one of them computes
// alike. It returns ErrExistingCluster as soon as an alive member holds raft
// state, and ErrBootstrapConflict if more than expect fresh voters appear.
func WaitBootstrap(ctx context.Context, g *Gossip, expect int) ([]Meta, error) {
	for {
		changed := g.Changed()
		var fresh []Meta
		for _, m := range g.Members() {
			if m.State != StateAlive {
				continue
			}
			if m.Bootstrapped {
				return nil, ErrExistingCluster
			}
			if m.Role == RoleVoter {
				fresh = append(fresh, m.Meta)
			}
		}
		if len(fresh) > expect {
			return nil, fmt.Errorf("%w: see %d, expect %d", ErrBootstrapConflict, len(fresh), expect)
		}
		if len(fresh) == expect {
			// A joining node learns the members one at a time: wait until
			// the view has been still for a moment, so a member that
			// already holds raft state (arriving later in the same merge)
			// is seen before this node bootstraps a second cluster.
			select {
			case <-changed:
				continue
			case <-time.After(bootstrapSettle):
			case <-ctx.Done():
				return nil, fmt.Errorf("membership: waiting for %d voters: %w", expect, ctx.Err())
			}
			slices.SortFunc(fresh, func(a, b Meta) int {
				switch {
				case a.RaftID < b.RaftID:
					return -1
				case a.RaftID > b.RaftID:
					return 1
				}
				return 0
			})
			return fresh, nil
		}
		select {
		case <-changed:
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil, fmt.Errorf("membership: waiting for %d voters (see %d): %w", expect, len(fresh), ctx.Err())
		}
	}
}

// delegate serves this node's metadata to memberlist.
type delegate struct{ g *Gossip }

func (d delegate) NodeMeta(limit int) []byte {
	b, err := msgpack.Marshal(d.g.LocalMeta())
	if err != nil || len(b) > limit {
		d.g.log.Error("node metadata does not fit", "size", len(b), "limit", limit, "err", err)
		return nil
	}
	return b
}
func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events records member changes.
type events struct{ g *Gossip }

func (e events) NotifyJoin(n *memberlist.Node)   { e.g.update(n, stateOf(n)) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.g.update(n, stateOf(n)) }

// NotifyLeave records a departure. memberlist does not say whether the node
// left or died, so a node that announced Leaving counts as left.
func (e events) NotifyLeave(n *memberlist.Node) {
	state := StateDead
	var meta Meta
	if mpguard.Unmarshal(n.Meta, &meta) == nil && meta.Leaving {
		state = StateLeft
	}
	e.g.update(n, state)
}

func stateOf(n *memberlist.Node) string {
	switch n.State {
	case memberlist.StateSuspect:
		return StateSuspect
	case memberlist.StateDead:
		return StateDead
	case memberlist.StateLeft:
		return StateLeft
	}
	return StateAlive
}
