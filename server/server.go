package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/front"
	"github.com/grovekit/grove/internal/audit"
	"github.com/grovekit/grove/membership"
	"github.com/grovekit/grove/transport"
	"github.com/grovekit/grove/zkwire"
)

// Server is one running Grove node. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	id     uint64
	node   *core.Node
	tr     *transport.TCP
	gossip *membership.Gossip
	httpLn net.Listener
	http   *http.Server
	met    *metrics
	// started is when the server started, for /status's uptime.
	started time.Time

	// mu guards the fields below it.
	mu        sync.Mutex
	removed   map[uint64]bool // members once in the configuration and then removed
	httpSess  httpSession
	wasMember bool            // this node has been in the raft configuration
	members   map[uint64]bool // raft members seen in the configuration

	// audit is the audit log (nil: off).
	audit *audit.Log
	// joins is the admission bookkeeping of the reconcile goroutine; the
	// HTTP handlers read and write its approved and awaiting fields, under
	// mu, as the reconcile goroutine does.
	joins joinState
	// fwd is the HTTPS client for forwarding writes to the leader.
	fwdOnce sync.Once
	fwd     *http.Client
	// backupsFailed counts backup streams that failed or were cut.
	backupsFailed atomic.Uint64
	// joinsRefused counts gossip members refused for a failed proof.
	joinsRefused atomic.Uint64

	clientLn net.Listener
	front    *front.Server
	zkLn     net.Listener
	zkTLSLn  net.Listener // the ZooKeeper secure port (Config.ZKSecureAddr)
	zk       *zkwire.Server

	stopc     chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	// leaving is set when POST /members/leave asked this node to leave;
	// left is closed once it has (Close returned).
	leaving   atomic.Bool
	left      chan struct{}
	leaveOnce sync.Once
}

// Start brings a node up: identity, transport, gossip, then either
// bootstrap (fresh data dir with BootstrapExpect), restart from disk, or a
// wait to be added to an existing cluster; then the reconciler and HTTP.
// ctx bounds the start-up, including the wait for bootstrap peers.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, configErr(err)
	}
	if err := core.CheckDataDirFree(cfg.DataDir); err != nil {
		return nil, configErr(err) // before anything announces this node
	}
	id, fresh, err := loadIdentity(cfg.DataDir)
	if err != nil {
		return nil, configErr(err)
	}
	s := &Server{cfg: cfg, id: id, log: cfg.Logger.With("name", cfg.Name), removed: map[uint64]bool{}, members: map[uint64]bool{}, stopc: make(chan struct{}),
		started: time.Now(), left: make(chan struct{})}
	if err := s.start(ctx, fresh); err != nil {
		_ = s.shutdown() // the start's error is the one to report
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, fresh bool) error {
	cfg := s.cfg
	var err error
	if cfg.AuditLog != "" {
		if s.audit, err = audit.Open(cfg.AuditLog, s.log); err != nil {
			return configErr(fmt.Errorf("server: --audit-log: %w", err))
		}
	}
	s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return configErr(fmt.Errorf("server: listen --http-addr %s: %w", cfg.HTTPAddr, err))
	}
	clientAddr := ""
	if cfg.ClientAddr != "" {
		if s.clientLn, err = net.Listen("tcp", cfg.ClientAddr); err != nil {
			return configErr(fmt.Errorf("server: listen --client-addr %s: %w", cfg.ClientAddr, err))
		}
		clientAddr = s.clientLn.Addr().String()
	}
	zkAddr := ""
	if cfg.ZKAddr != "" {
		if s.zkLn, err = net.Listen("tcp", cfg.ZKAddr); err != nil {
			return configErr(fmt.Errorf("server: listen --zk-addr %s: %w", cfg.ZKAddr, err))
		}
		zkAddr = s.zkLn.Addr().String()
	}
	if cfg.ZKSecureAddr != "" {
		if s.zkTLSLn, err = net.Listen("tcp", cfg.ZKSecureAddr); err != nil {
			return configErr(fmt.Errorf("server: listen --zk-secure-addr %s: %w", cfg.ZKSecureAddr, err))
		}
	}
	tc := transport.DefaultConfig()
	tc.ID, tc.ListenAddr, tc.TLS, tc.ClusterKey, tc.Logger = s.id, cfg.PeerAddr, cfg.PeerTLS, cfg.ClusterKey, s.log
	if cfg.PeerTLS != nil && !cfg.PeerTLSAnyName {
		tc.VerifyPeer = s.verifyPeerCert
	}
	if s.tr, err = transport.New(tc); err != nil {
		return configErr(fmt.Errorf("server: listen --peer-addr %s: %w", cfg.PeerAddr, err))
	}
	role := membership.RoleVoter
	if cfg.Learner {
		role = membership.RoleLearner
	}
	meta := membership.Meta{
		Name: cfg.Name, RaftID: s.id, PeerAddr: s.tr.Addr().String(),
		ClientAddr: clientAddr, ZKAddr: zkAddr, HTTPAddr: s.httpLn.Addr().String(),
		Role: role, Bootstrapped: !fresh,
	}
	s.gossip, err = membership.Start(membership.Config{
		BindAddr: cfg.GossipAddr, Join: cfg.Join, Meta: meta, SecretKey: cfg.GossipKey, Logger: s.log,
	})
	if err != nil {
		return configErr(err)
	}
	var peers []core.Peer
	if fresh && cfg.BootstrapExpect > 0 {
		set, err := membership.WaitBootstrap(ctx, s.gossip, cfg.BootstrapExpect)
		switch {
		case errors.Is(err, membership.ErrExistingCluster):
			s.log.Info("a cluster exists already; waiting to be added to it")
		case err != nil:
			return fmt.Errorf("server: bootstrap: %w", err)
		default:
			for _, m := range set {
				peers = append(peers, core.Peer{ID: m.RaftID, Addr: m.PeerAddr})
			}
			s.log.Info("bootstrapping a new cluster", "voters", len(peers))
		}
	}
	cc := cfg.Core
	cc.ID, cc.DataDir, cc.Peers, cc.Transport, cc.Logger = s.id, cfg.DataDir, peers, s.tr, s.log
	s.met = newMetrics(s)
	cc.Observer = s.met
	if s.node, err = core.StartNode(ctx, cc); err != nil {
		s.tr = nil // the node owns and closed it
		if errors.Is(err, core.ErrDataDirInUse) {
			return configErr(err)
		}
		return err
	}
	s.wg.Go(s.reconcileLoop)
	if s.clientLn != nil {
		fc := cfg.Front
		fc.Node, fc.TLS, fc.Logger, fc.Audit = s.node, cfg.ClientTLS, s.log, s.audit
		fc.ObserveRequest = s.met.observeRequests("native")
		fc.AdminURL = s.adminURL()
		if s.front, err = front.New(fc); err != nil {
			return configErr(err)
		}
		ln := s.clientLn
		s.wg.Go(func() {
			if err := s.front.Serve(ln); err != nil && !errors.Is(err, front.ErrClosed) {
				s.log.Error("client port", "err", err)
			}
		})
	}
	if s.zkLn != nil || s.zkTLSLn != nil {
		zc := cfg.ZK
		zc.Node, zc.Logger, zc.Audit = s.node, s.log, s.audit
		zc.ObserveRequest = s.met.observeRequests("zookeeper")
		dc := core.DefaultConfig()
		minTO, maxTO := cmp.Or(cfg.Core.MinSessionTimeout, dc.MinSessionTimeout), cmp.Or(cfg.Core.MaxSessionTimeout, dc.MaxSessionTimeout)
		zc.Conf = map[string]string{"dataDir": cfg.DataDir,
			"tickTime":          fmt.Sprint(cfg.Core.TickInterval.Milliseconds()),
			"minSessionTimeout": fmt.Sprint(minTO.Milliseconds()),
			"maxSessionTimeout": fmt.Sprint(maxTO.Milliseconds())}
		if s.zkLn != nil {
			zc.Conf["clientPort"] = portOf(s.zkLn.Addr())
		}
		if s.zkTLSLn != nil {
			zc.Conf["secureClientPort"] = portOf(s.zkTLSLn.Addr())
		}
		if s.zk, err = zkwire.New(zc); err != nil {
			return configErr(err)
		}
		serve := func(what string, ln net.Listener, tlsCfg *tls.Config) {
			s.wg.Go(func() {
				var err error
				if tlsCfg != nil {
					err = s.zk.ServeTLS(ln, tlsCfg)
				} else {
					err = s.zk.Serve(ln)
				}
				if err != nil && !errors.Is(err, zkwire.ErrClosed) {
					s.log.Error(what, "err", err)
				}
			})
		}
		if s.zkLn != nil {
			serve("zookeeper port", s.zkLn, nil)
		}
		if s.zkTLSLn != nil {
			serve("zookeeper secure port", s.zkTLSLn, cfg.ClientTLS)
		}
	}
	// HTTP last: its handlers read the fronts set up above.
	// Write timeout: a reply has 30 s; the backup stream sets its own
	// deadline per write (stallWriter).
	s.http = &http.Server{Handler: s.guard(s.routes()), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: time.Minute, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	httpLn := s.httpLn
	if cfg.HTTPTLS != nil {
		httpLn = tls.NewListener(httpLn, cfg.HTTPTLS)
	}
	s.wg.Go(func() {
		if err := s.http.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "err", err)
		}
	})
	return nil
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// ZKAddr returns the address of the ZooKeeper port ("" if none).
func (s *Server) ZKAddr() string {
	if s.zkLn == nil {
		return ""
	}
	return s.zkLn.Addr().String()
}

// ZKSecureAddr returns the address of the ZooKeeper secure port ("" if
// none).
func (s *Server) ZKSecureAddr() string {
	if s.zkTLSLn == nil {
		return ""
	}
	return s.zkTLSLn.Addr().String()
}

// ClientAddr returns the address of the native client port ("" if none).
func (s *Server) ClientAddr() string {
	if s.clientLn == nil {
		return ""
	}
	return s.clientLn.Addr().String()
}

// ClientConns returns the number of open native client connections.
func (s *Server) ClientConns() int {
	if s.front == nil {
		return 0
	}
	return s.front.ConnCount()
}

// Node returns the core node, for embedding front ends.
func (s *Server) Node() *core.Node { return s.node }

// ID returns the node's raft ID.
func (s *Server) ID() uint64 { return s.id }

// HTTPAddr returns the address the HTTP endpoints listen on.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// adminURL is the HTTP port's address as a URL, with https when it speaks
// TLS; the native client port tells it to clients (grove status
// --servers finds the HTTP port this way).
func (s *Server) adminURL() string {
	if s.httpLn == nil {
		return ""
	}
	scheme := "http://"
	if s.cfg.HTTPTLS != nil {
		scheme = "https://"
	}
	return scheme + s.HTTPAddr()
}

// GossipAddr returns the address gossip listens on.
func (s *Server) GossipAddr() string { return s.gossip.Addr() }

// PeerAddr returns the address the peer transport listens on.
func (s *Server) PeerAddr() string { return s.tr.Addr().String() }

// Done closes when the node stops by itself (a fatal storage error, or its
// removal from the cluster).
func (s *Server) Done() <-chan struct{} { return s.node.Done() }

// Close leaves the cluster gracefully: the node asks to be removed from the
// raft configuration (waiting a few seconds for it), announces its
// departure in gossip and stops. The data dir is marked so the node never
// rejoins with its old ID. Idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.handOff()
		if s.node != nil && s.isMember() {
			// Announce the departure first, so no leader re-adds this node
			// between its removal and its gossip leave.
			if err := s.gossip.UpdateMeta(func(m *membership.Meta) { m.Leaving = true }); err != nil {
				s.log.Warn("announce leaving", "err", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.node.RemoveMember(ctx, s.id); err != nil {
				s.log.Warn("graceful leave: removal not confirmed", "err", err)
			}
			cancel()
			if err := markLeft(s.cfg.DataDir); err != nil {
				s.log.Warn("mark data dir as left", "err", err)
			}
		}
		if s.gossip != nil {
			if err := s.gossip.Leave(2 * time.Second); err != nil {
				s.log.Warn("gossip leave", "err", err)
			}
		}
		s.closeErr = s.shutdown()
	})
	return s.closeErr
}

// Leave makes the node leave the cluster for good in the background, as
// Close does, and returns at once; Left is closed once it has. It is what
// POST /members/leave (grove members leave) does.
func (s *Server) Leave() {
	s.leaveOnce.Do(func() {
		s.leaving.Store(true)
		go func() {
			if err := s.Close(); err != nil {
				s.log.Warn("leave", "err", err)
			}
			close(s.left)
		}()
	})
}

// Leaving reports whether Leave was called.
func (s *Server) Leaving() bool { return s.leaving.Load() }

// Left returns a channel closed once a Leave has finished.
func (s *Server) Left() <-chan struct{} { return s.left }

// Stop stops the node without leaving the cluster, as a restart or a crash
// would: it stays a member and can come back from its data dir.
// Idempotent with Close.
//
// A leader first hands leadership to the most caught-up other voter
// (handOff), so a planned stop or a rolling restart costs the cluster a
// round trip instead of an election timeout.
func (s *Server) Stop() error {
	s.closeOnce.Do(func() {
		s.handOff()
		s.closeErr = s.shutdown()
	})
	return s.closeErr
}

// handOffAttempts is how many transfers a stopping leader tries.
const handOffAttempts = 3

// handOffTimeout bounds how long a stopping leader waits for another
// voter to take over: two election timeouts (raft gives up a transfer
// after one).
func (s *Server) handOffTimeout() time.Duration {
	return 2 * time.Duration(s.cfg.Core.ElectionTicks) * s.cfg.Core.TickInterval
}

// handOff transfers leadership away from this node if it leads a cluster
// with other voters. A failed transfer is logged; the stop goes on, and
// the others elect a leader after their election timeout as after a crash.
func (s *Server) handOff() {
	if s.node == nil || !s.node.IsLeader() || len(s.node.Status().Voters) < 2 {
		return
	}
	// Raft gives up a transfer after an election timeout (a target slow
	// to catch up, a busy machine): try a few times before stopping anyway.
	var err error
	for range handOffAttempts {
		ctx, cancel := context.WithTimeout(context.Background(), s.handOffTimeout())
		var to uint64
		to, err = s.node.TransferLeadership(ctx, 0)
		cancel()
		if err == nil {
			s.log.Info("stopping leader: handed leadership over", "to", idString(to))
			return
		}
		if !s.node.IsLeader() { // it went through as the wait ended
			s.log.Info("stopping leader: handed leadership over", "to", idString(s.node.Leader()))
			return
		}
	}
	s.log.Warn("stopping leader: leadership not handed over", "err", err)
}

func (s *Server) shutdown() error {
	close(s.stopc)
	if s.front != nil {
		_ = s.front.Close() // clients move to other servers
	} else if s.clientLn != nil {
		_ = s.clientLn.Close()
	}
	if s.zk != nil {
		_ = s.zk.Close()
	} else if s.zkLn != nil {
		_ = s.zkLn.Close()
	}
	if s.zkTLSLn != nil {
		_ = s.zkTLSLn.Close() // closed already if s.zk served it
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
	} else if s.httpLn != nil {
		_ = s.httpLn.Close()
	}
	s.wg.Wait()
	var err error
	if s.node != nil {
		err = s.node.Close() // closes the transport too
	} else if s.tr != nil {
		_ = s.tr.Close()
	}
	if s.gossip != nil {
		_ = s.gossip.Close()
	}
	if aerr := s.audit.Close(); aerr != nil {
		s.log.Warn("audit log", "err", aerr)
	}
	return err
}

func (s *Server) isMember() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wasMember
}
