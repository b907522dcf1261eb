package core

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/fsm"
	"github.com/grovekit/grove/internal/logutil"
	"github.com/grovekit/grove/internal/wal"
)

// Node is one member of a Grove cluster: a raft replica of the znode store
// with its own data file. All methods are safe for concurrent use.
type Node struct {
	cfg Config
	log *slog.Logger
	// stateDB is the state file; Defrag swaps it for a compacted copy, so
	// every use loads it (data).
	stateDB atomic.Pointer[bbolt.DB]
	// retired waits for state files Defrag replaced to close once their
	// last reader is done.
	retired sync.WaitGroup
	wal     *wal.WAL // the log; the log writer's after start
	ms      *raft.MemoryStorage
	tr      Transport

	// Owned by the loop goroutine.
	rn        *raft.RawNode
	confState *pb.ConfState
	lastStamp int64
	loopState loopState
	// incarnation is random per start; it tags ReadIndex requests.
	incarnation uint64
	// campaignAt, if non-zero, is the applied index at which the loop
	// campaigns once (a fresh single-node cluster).
	campaignAt uint64
	// restartCampaignAt is the tick at which a restarted voter campaigns
	// (0: none); set before the loop starts, which copies it.
	restartCampaignAt uint64

	propc       chan proposal
	recvc       chan *pb.Message
	readc       chan chan uint64
	confc       chan confRequest
	snapc       chan snapReport
	snapInc     chan snapIncoming
	flushc      chan chan error
	defragc     chan chan defragResult
	peerDownc   chan uint64
	writer      *logWriter // the log writer
	stateWriter *logWriter // the state writer
	// lastHS is the newest hard state the log writer has seen (written or
	// not); log writer only (and the loop while that writer is idle).
	lastHS    *pb.HardState
	stopc     chan struct{}
	donec     chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	waits    *waitRegistry
	watches  *watchManager
	sessions *sessionTracker
	kaWaits  *keepAliveWaits

	stats      counters
	applied    atomic.Uint64 // last applied index (visible to reads)
	dispatched notifier      // index up to which watch events are delivered

	// stateMu guards layers: readers hold it shared for as long as they
	// read, the loop exclusively while it applies or drops a layer. Lock
	// order: the watch manager's lock before stateMu.
	stateMu sync.RWMutex
	layers  []*fsm.Layer // applied changes not yet in bbolt, oldest first
	state   appliedState // loop only

	// mu guards the fields below it.
	mu           sync.RWMutex
	status       Status
	leaderChange chan struct{} // closed and replaced when the leader changes
	err          error         // why the node stopped, if it failed
}

// StartNode opens (or creates) the node's data file, restores its state and
// starts it. A fresh data dir with Config.Peers bootstraps a new cluster;
// an existing one restarts from disk, replaying only the log tail past the
// applied index. A corrupt, truncated or foreign data file returns an error
// naming the file and wrapping grove.ErrCorrupt.
//
// ctx bounds only the start-up; the node runs until Close. The node owns
// cfg.Transport from this call on: on an error StartNode has closed it.
func StartNode(ctx context.Context, cfg Config) (n *Node, err error) {
	defer func() {
		if err != nil && cfg.Transport != nil {
			if cerr := cfg.Transport.Close(); cerr != nil && cfg.Logger != nil {
				cfg.Logger.Warn("close transport after a failed start", "err", cerr)
			}
		}
	}()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := openDB(cfg.DataDir, cfg.ID, cfg.NoSync)
	if err != nil {
		return nil, err
	}
	w, rp, err := openLog(cfg.DataDir, db, cfg.NoSync)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	removeStaleSnapshots(cfg.DataDir)
	_ = os.Remove(filepath.Join(cfg.DataDir, dataFileName+defragSuffix)) // a defrag a crash cut short
	if err := startSeeded(db, w, cfg.DataDir, cfg.Peers); err != nil {
		_ = w.Close()
		_ = db.Close()
		return nil, err
	}
	if n, err = newNode(cfg, db, w, rp); err != nil {
		_ = w.Close()
		_ = db.Close()
		return nil, err
	}
	return n, nil
}

func newNode(cfg Config, db *bbolt.DB, w *wal.WAL, rp *wal.Replay) (*Node, error) {
	rs, err := loadRaftState(db, rp, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if err := rs.finishReset(w); err != nil {
		return nil, err
	}
	ms, err := rs.memoryStorage()
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:          cfg,
		log:          cfg.Logger.With(slog.Uint64("node", cfg.ID)),
		wal:          w,
		ms:           ms,
		tr:           cfg.Transport,
		confState:    rs.conf,
		propc:        make(chan proposal, 4096),
		recvc:        make(chan *pb.Message, 4096),
		readc:        make(chan chan uint64, 1024),
		confc:        make(chan confRequest, 16),
		snapc:        make(chan snapReport, 16),
		snapInc:      make(chan snapIncoming),
		flushc:       make(chan chan error),
		defragc:      make(chan chan defragResult),
		peerDownc:    make(chan uint64, 16),
		lastHS:       rs.hard,
		stopc:        make(chan struct{}),
		donec:        make(chan struct{}),
		waits:        newWaitRegistry(),
		watches:      newWatchManager(),
		kaWaits:      newKeepAliveWaits(),
		leaderChange: make(chan struct{}),
	}
	n.stateDB.Store(db)
	n.writer = newLogWriter(n.writeLog)
	n.stateWriter = newLogWriter(n.writeState)
	n.sessions = newSessionTracker()
	var inc [8]byte
	_, _ = rand.Read(inc[:])
	n.incarnation = binary.BigEndian.Uint64(inc[:])
	n.dispatched.init()
	n.applied.Store(rs.appliedIndex)
	n.layers = []*fsm.Layer{fsm.NewLayer()}
	n.state = appliedState{durable: rs.appliedIndex}
	n.dispatched.set(rs.appliedIndex)
	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   ms,
		Applied:                   rs.appliedIndex,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           256,
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		AsyncStorageWrites:        true,
		Logger:                    logutil.Raft(n.log),
		StepDownOnRemoval:         true,
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("core: start raft: %w", err)
	}
	n.rn = rn
	// Bootstrap when raft holds no state at all, not merely when the file
	// is new: a node stopped before its first Ready persisted the bootstrap
	// entries must bootstrap again on the next start.
	empty := rs.appliedIndex == 0 && len(rs.entries) == 0 && raft.IsEmptyHardState(rs.hard) &&
		len(rs.conf.GetVoters()) == 0 && len(rs.conf.GetLearners()) == 0
	bootstrap := empty && len(cfg.Peers) > 0
	if bootstrap {
		peers := make([]raft.Peer, len(cfg.Peers))
		for i, p := range cfg.Peers {
			peers[i] = raft.Peer{ID: p.ID, Context: []byte(p.Addr)}
		}
		if err := rn.Bootstrap(peers); err != nil {
			return nil, fmt.Errorf("core: bootstrap: %w", err)
		}
		if err := saveClusterID(db, cfg.Peers); err != nil {
			return nil, fmt.Errorf("core: bootstrap: %w", err)
		}
	}
	n.status = Status{ID: cfg.ID, Role: RoleFollower, Applied: rs.appliedIndex}
	if n.tr != nil {
		known, err := loadPeers(db)
		if err != nil {
			return nil, fmt.Errorf("core: load peer addresses: %w", err)
		}
		for _, p := range cfg.Peers {
			known[p.ID] = p.Addr
		}
		for id, addr := range known {
			if id != cfg.ID && addr != "" {
				n.tr.AddPeer(id, addr)
			}
		}
		if err := n.tr.Start(handler{n}); err != nil {
			return nil, fmt.Errorf("core: start transport: %w", err)
		}
	}
	// A single-node cluster elects itself as soon as its bootstrap
	// configuration is applied (raft refuses to campaign before). The loop
	// owns campaignAt from the moment it starts, so it is set before.
	if len(cfg.Peers) == 1 && bootstrap {
		n.campaignAt = uint64(len(cfg.Peers))
	}
	// A restarted voter of a larger cluster campaigns a few ticks in,
	// ranked by raft ID, instead of after a randomized election timeout:
	// after a whole-cluster restart (a power cut, an upgrade) the first
	// voter up that the others can answer becomes leader about a tick
	// later. With PreVote a voter that still hears a leader refuses it, so
	// restarting one node into a healthy cluster disrupts nothing.
	if !bootstrap {
		n.restartCampaignAt = startCampaignTick(n.confState.GetVoters(), cfg.ID)
	}
	n.wg.Go(n.writer.run)
	n.wg.Go(n.stateWriter.run)
	n.wg.Go(n.run)
	if n.cfg.ScrubInterval > 0 {
		n.wg.Go(n.scrubLoop)
	}
	return n, nil
}

// ID returns the node's raft ID.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Done returns a channel closed when the node has stopped, by Close or by a
// fatal error (see Err).
func (n *Node) Done() <-chan struct{} { return n.donec }

// Err returns the fatal error that stopped the node, grove.ErrStopped after
// Close, or nil while it runs.
func (n *Node) Err() error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.err
}

// Close stops the node and waits for all of its goroutines, then closes the
// transport and the data file. It is safe to call more than once and from
// several goroutines; every call returns the fatal error if the node failed
// before Close, else nil.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stopc)
		n.wg.Wait()
		if n.tr != nil {
			if err := n.tr.Close(); err != nil {
				n.log.Warn("close transport", "err", err)
			}
		}
		n.sessions.stepDown()
		if err := n.wal.Close(); err != nil {
			n.log.Warn("close log", "err", err)
		}
		n.retired.Wait()
		if err := closeDB(n.data()); err != nil {
			n.log.Warn("close data file", "err", err)
		}
	})
	<-n.donec
	if err := n.Err(); err != nil && err != grove.ErrStopped {
		return err
	}
	return nil
}

// fail records the fatal error that stops the node; only the first counts.
func (n *Node) fail(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err == nil {
		n.err = err
	}
}

// stopErr is the error returned to callers once the node has stopped.
func (n *Node) stopErr() error {
	if err := n.Err(); err != nil && err != grove.ErrStopped {
		return fmt.Errorf("core: node failed: %w: %w", err, grove.ErrStopped)
	}
	return grove.ErrStopped
}

// leaderChanged returns a channel closed at the next leader change.
func (n *Node) leaderChanged() <-chan struct{} {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.leaderChange
}

// Campaign makes this node start an election now. Tests use it to choose a
// leader; production clusters elect one by themselves. It returns
// grove.ErrStopped after Close.
func (n *Node) Campaign(ctx context.Context) error {
	select {
	case n.confc <- confRequest{campaign: true}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return n.stopErr()
	}
}

// WaitApplied blocks until the node has applied (and delivered the watch
// events of) every entry up to index, ctx ends, or the node stops.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	return n.dispatched.wait(ctx, index, n.donec, n.stopErr)
}

// AppliedIndex returns the last applied index (the zxid of the newest state
// reads see).
func (n *Node) AppliedIndex() uint64 { return n.applied.Load() }

// now is the wall clock; the leader stamps entries with it.
func now() time.Time { return time.Now() }
