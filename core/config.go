package core

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Peer is a member of the initial cluster: its raft ID and the transport
// address other members reach it at.
type Peer struct {
	ID   uint64
	Addr string
}

// Config configures a Node. StartNode copies it; changing it afterwards has
// no effect. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// ID is this node's raft ID: non-zero and never reused for another node.
	ID uint64
	// DataDir holds the node's two files: the state file (grove.db) and the
	// write-ahead log (wal/). Required.
	DataDir string
	// Peers is the initial voter set, used only when DataDir is fresh. It
	// must include this node and be identical on every initial member. Leave
	// it empty to start a node that waits to be added to an existing cluster.
	Peers []Peer
	// Transport carries messages to the other nodes. Required for clusters;
	// nil is allowed for a single-node cluster. StartNode takes ownership:
	// the node closes it on Close, and StartNode closes it itself when it
	// returns an error, whatever the cause (bad config, a corrupt data
	// file, a failed Start). The caller never closes it.
	Transport Transport

	// TickInterval is raft's logical clock period. Default 50ms.
	TickInterval time.Duration
	// ElectionTicks is the number of ticks without a leader before a
	// follower campaigns; it must be greater than HeartbeatTicks (10x
	// suggested). Default 10 (500ms with the default tick).
	ElectionTicks int
	// HeartbeatTicks is the number of ticks between leader heartbeats.
	// Default 1.
	HeartbeatTicks int

	// SnapshotEntries is how many applied entries the log keeps before it is
	// truncated behind the applied index. Default 10,000.
	SnapshotEntries uint64
	// CatchUpEntries is how many entries are kept behind the truncation
	// point so slightly lagging followers catch up from the log rather than
	// a snapshot. Default 5,000; must be below SnapshotEntries.
	CatchUpEntries uint64

	// MinSessionTimeout and MaxSessionTimeout bound the session timeouts
	// clients ask for. Defaults 2s and 60s.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// MaxDataSize is the largest znode data accepted. Default 1 MiB, as
	// ZooKeeper's jute.maxbuffer.
	MaxDataSize int
	// SuperDigest, if set, is "super:base64(sha1(super:password))"; a
	// session that authenticates as it gets every permission.
	SuperDigest string

	// ReapInterval is how often the leader looks for empty containers and
	// expired TTL nodes. Default 1s.
	ReapInterval time.Duration
	// RetryInterval is how long a proposal waits for its entry to apply
	// before it is proposed again (safe: retries are deduplicated).
	// Default 2 election timeouts.
	RetryInterval time.Duration

	// ScrubInterval is how often every stored znode record is read back and
	// its checksum verified; a damaged record is logged with its path and
	// counted (Stats.CorruptRecords). Reads check every record they touch
	// anyway: a damaged one is an error, never served. Default 1h;
	// negative turns the background scrub off.
	ScrubInterval time.Duration

	// Observer, if set, gets the node's measurements (for metrics).
	Observer Observer

	// Logger receives the node's logs. Nil discards them.
	Logger *slog.Logger
	// NoSync turns off fsync. Only for tests: it breaks durability.
	NoSync bool
}

// DefaultConfig returns a Config with every tunable set to its default.
func DefaultConfig() Config {
	return Config{
		TickInterval:      50 * time.Millisecond,
		ElectionTicks:     10,
		HeartbeatTicks:    1,
		SnapshotEntries:   10000,
		CatchUpEntries:    5000,
		MinSessionTimeout: 2 * time.Second,
		MaxSessionTimeout: 60 * time.Second,
		MaxDataSize:       1 << 20,
		ReapInterval:      time.Second,
		ScrubInterval:     time.Hour,
	}
}

// validate fills zero fields with defaults and rejects invalid settings.
func (c *Config) validate() error {
	d := DefaultConfig()
	if c.ID == 0 {
		return errors.New("core: config: ID must be non-zero")
	}
	if c.DataDir == "" {
		return errors.New("core: config: DataDir is required")
	}
	setDur(&c.TickInterval, d.TickInterval)
	setInt(&c.ElectionTicks, d.ElectionTicks)
	setInt(&c.HeartbeatTicks, d.HeartbeatTicks)
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = d.SnapshotEntries
	}
	if c.CatchUpEntries == 0 {
		c.CatchUpEntries = min(d.CatchUpEntries, c.SnapshotEntries/2)
	}
	setDur(&c.MinSessionTimeout, d.MinSessionTimeout)
	setDur(&c.MaxSessionTimeout, d.MaxSessionTimeout)
	setInt(&c.MaxDataSize, d.MaxDataSize)
	setDur(&c.ReapInterval, d.ReapInterval)
	if c.ScrubInterval == 0 {
		c.ScrubInterval = d.ScrubInterval
	}
	setDur(&c.RetryInterval, 2*time.Duration(c.ElectionTicks)*c.TickInterval)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.ElectionTicks <= c.HeartbeatTicks:
		return fmt.Errorf("core: config: ElectionTicks (%d) must be greater than HeartbeatTicks (%d)", c.ElectionTicks, c.HeartbeatTicks)
	case c.CatchUpEntries >= c.SnapshotEntries:
		return fmt.Errorf("core: config: CatchUpEntries (%d) must be below SnapshotEntries (%d)", c.CatchUpEntries, c.SnapshotEntries)
	case c.MinSessionTimeout > c.MaxSessionTimeout:
		return fmt.Errorf("core: config: MinSessionTimeout %v exceeds MaxSessionTimeout %v", c.MinSessionTimeout, c.MaxSessionTimeout)
	case c.Transport == nil && len(c.Peers) > 1:
		return errors.New("core: config: a Transport is required for more than one peer")
	}
	seen := map[uint64]bool{}
	self := false
	for _, p := range c.Peers {
		if p.ID == 0 || seen[p.ID] {
			return fmt.Errorf("core: config: peer id %d is zero or repeated", p.ID)
		}
		seen[p.ID] = true
		self = self || p.ID == c.ID
	}
	if len(c.Peers) > 0 && !self {
		return fmt.Errorf("core: config: Peers must include this node (id %d)", c.ID)
	}
	c.Peers = append([]Peer(nil), c.Peers...)
	return nil
}

func setDur(p *time.Duration, d time.Duration) {
	if *p <= 0 {
		*p = d
	}
}

func setInt(p *int, d int) {
	if *p <= 0 {
		*p = d
	}
}

// Observer receives measurements from the node, for metrics. Its methods
// are called from several of the node's goroutines (the loop, the log and
// state writers, snapshot streams), possibly at once, and must not block.
// Embed NopObserver to implement only some of them.
type Observer interface {
	// ObservePersist reports one log write: how long the append and its
	// fsync took and how many entries it appended. applied is always 0:
	// entries are applied in memory, apart from the log's writes.
	ObservePersist(d time.Duration, appended, applied int)
	// ObserveStateCommit reports one commit of applied changes to the
	// state file (off the write path) and how long it took, fsync included.
	ObserveStateCommit(d time.Duration)
	// ObserveApply reports applying a batch of committed entries to the
	// in-memory state and answering their waiters.
	ObserveApply(d time.Duration, entries int)
	// ObserveSnapshot reports a snapshot streamed to a follower ("send")
	// or installed from the leader ("install").
	ObserveSnapshot(kind string, d time.Duration)
	// ObservePeerRTT reports a heartbeat's round trip from this leader to
	// peer and back.
	ObservePeerRTT(peer uint64, d time.Duration)
	// ObserveLeaderChange reports that this node learned of a new leader
	// (0: none known).
	ObserveLeaderChange(leader uint64)
}

// NopObserver implements Observer doing nothing; embed it in an observer
// that wants only some of the measurements.
type NopObserver struct{}

// ObservePersist implements Observer.
func (NopObserver) ObservePersist(time.Duration, int, int) {}

// ObserveStateCommit implements Observer.
func (NopObserver) ObserveStateCommit(time.Duration) {}

// ObserveApply implements Observer.
func (NopObserver) ObserveApply(time.Duration, int) {}

// ObserveSnapshot implements Observer.
func (NopObserver) ObserveSnapshot(string, time.Duration) {}

// ObservePeerRTT implements Observer.
func (NopObserver) ObservePeerRTT(uint64, time.Duration) {}

// ObserveLeaderChange implements Observer.
func (NopObserver) ObserveLeaderChange(uint64) {}
