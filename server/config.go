// Package server runs one Grove node as a process component: the core
// engine, the TCP peer transport, gossip discovery (package membership),
// the reconciler that keeps raft's configuration and gossip in step, and
// the HTTP endpoints (/status, /healthz, /metrics, /members).
//
// # Usage
//
//	s, err := server.Start(ctx, server.Config{
//		Name: "n1", DataDir: "/var/lib/grove",
//		GossipAddr: "127.0.0.1:7946", PeerAddr: "127.0.0.1:2380",
//		HTTPAddr: "127.0.0.1:8080", BootstrapExpect: 3,
//		Join: []string{"127.0.0.1:7947"},
//	})
//	defer s.Close() // graceful leave: removes this node from the cluster
package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/front"
	"github.com/grovekit/grove/zkwire"
)

// Config configures a server. Start copies it.
type Config struct {
	// Name identifies the node in gossip and to operators; unique.
	Name string
	// DataDir holds the data file and the node's identity. Required.
	DataDir string
	// GossipAddr, PeerAddr, ClientAddr, ZKAddr and HTTPAddr are host:port
	// listen addresses. Port 0 picks a free port. ClientAddr (the native
	// client port; empty: none) and ZKAddr are announced in gossip for
	// clients to discover.
	GossipAddr string
	PeerAddr   string
	ClientAddr string
	ZKAddr     string
	// ZKSecureAddr, if set, is a second ZooKeeper port that speaks TLS
	// with ClientTLS (ZooKeeper's secureClientPort; kazoo's use_ssl, the
	// Java client's zookeeper.client.secure). It needs ClientTLS.
	ZKSecureAddr string
	HTTPAddr     string
	// Join lists gossip seeds (host:port).
	Join []string
	// BootstrapExpect, when > 0 on a fresh data dir, forms a new cluster
	// once this many fresh voter-eligible nodes see each other. 0 means:
	// join an existing cluster (the leader adds this node).
	BootstrapExpect int
	// Learner keeps this node a non-voting learner (read scale-out).
	Learner bool
	// PeerTLS, if set, secures peer traffic with mutual TLS. A peer's
	// certificate must name the node it speaks for (its common name or a
	// DNS name equal to the node's --name), unless PeerTLSAnyName.
	PeerTLS *tls.Config
	// PeerTLSAnyName lets any certificate the CA signed speak for any
	// node (one certificate shared by all nodes).
	PeerTLSAnyName bool
	// ClientTLS, if set, makes the client port speak TLS.
	ClientTLS *tls.Config
	// Front tunes the client port (frame and in-flight limits); its Node,
	// TLS and Logger are set by the server.
	Front front.Config
	// ZK tunes the ZooKeeper port (jute.maxbuffer, limits); its Node and
	// Logger are set by the server.
	ZK zkwire.Config
	// ClusterKey, if set (at least 32 bytes), is the cluster's shared
	// secret: every peer connection proves both ends hold it (see package
	// transport), and, unless GossipKey is set, a key derived from it
	// encrypts and authenticates gossip. Every node needs the same key.
	ClusterKey []byte
	// GossipKey, if set (16, 24 or 32 bytes), encrypts gossip instead of
	// the key derived from ClusterKey.
	GossipKey []byte
	// HTTPTLS, if set, makes the HTTP port speak HTTPS with it. A follower
	// forwards writes to the leader over HTTPS too, verifying it with
	// HTTPTLS.RootCAs (nil: the system's roots).
	HTTPTLS *tls.Config
	// HTTPToken, if set, is the bearer token every HTTP endpoint that
	// reads data or changes the cluster requires (see httpguard.go).
	HTTPToken []byte
	// BackupToken, if set, is the only token GET /v1/backup accepts (a
	// backup role apart from the admin token, which then cannot take
	// backups).
	BackupToken []byte
	// BackupStallTimeout cuts a backup download whose client has taken no
	// bytes for this long, closing the read transaction it pins (which
	// otherwise keeps the data file from reusing pages). Default 30s.
	BackupStallTimeout time.Duration
	// ProtectMetrics puts /metrics behind HTTPToken too.
	ProtectMetrics bool
	// HTTPAllowedHosts are the DNS names clients may use in the Host header
	// besides IP addresses and localhost.
	HTTPAllowedHosts []string
	// AuditLog, if set, is the file the audit log is appended to (JSON
	// lines): every write and ACL change on every port, membership changes
	// and backups, with who made them (package internal/audit).
	AuditLog string
	// Insecure lets a server whose peer, gossip or HTTP address is not a
	// loopback address start without peer authentication (ClusterKey or
	// PeerTLS), gossip encryption or an HTTP token. Without it such a server refuses to
	// start: any process that reaches those ports could join the cluster,
	// read every znode and forge writes.
	Insecure bool
	// CleanupDeadAfter, if > 0, lets the leader remove a voter that gossip
	// has reported dead for this long, never going below MinVoters.
	// 0 (default) leaves dead voters for an operator to remove.
	CleanupDeadAfter time.Duration
	// MinVoters is the voter count dead-voter cleanup never goes below.
	// Default 3.
	MinVoters int
	// JoinPolicy says how gossip members enter the raft configuration:
	// "auto" (default): the leader adds any member that proves itself on
	// the peer port; "manual": only members an operator approved with
	// POST /members/add (grove members add NAME), and proved themselves.
	JoinPolicy string
	// MaxLearners bounds the learners the leader adds from gossip; a
	// member announced beyond it waits. Default 8.
	MaxLearners int
	// LearnerTimeout is how long a learner the leader added may go without
	// acknowledging a single entry before the leader removes it again (it
	// can rejoin with a fresh data dir). Default 5m.
	LearnerTimeout time.Duration
	// Core tunes the engine (ticks, timeouts, snapshots, limits); its ID,
	// DataDir, Peers and Transport are set by the server.
	Core core.Config
	// Pprof serves Go's profiler (net/http/pprof) at /debug/pprof/ on the
	// HTTP address. Off by default: profiles reveal internals and cost CPU.
	Pprof bool
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.Name == "" {
		return errors.New("server: --name is required")
	}
	if c.DataDir == "" {
		return errors.New("server: --data-dir is required")
	}
	for flag, addr := range map[string]string{"gossip-addr": c.GossipAddr, "peer-addr": c.PeerAddr, "http-addr": c.HTTPAddr, "client-addr": c.ClientAddr, "zk-addr": c.ZKAddr} {
		if (flag == "client-addr" || flag == "zk-addr") && addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("server: --%s %q: %w", flag, addr, err)
		}
	}
	if c.ZKSecureAddr != "" {
		if _, _, err := net.SplitHostPort(c.ZKSecureAddr); err != nil {
			return fmt.Errorf("server: --zk-secure-addr %q: %w", c.ZKSecureAddr, err)
		}
		if c.ClientTLS == nil {
			return errors.New("server: --zk-secure-addr needs --client-tls-cert and --client-tls-key")
		}
	}
	if c.BootstrapExpect < 0 {
		return fmt.Errorf("server: --bootstrap-expect %d must not be negative", c.BootstrapExpect)
	}
	if c.Learner && c.BootstrapExpect > 0 {
		return errors.New("server: a --learner cannot be one of the --bootstrap-expect voters")
	}
	if n := len(c.GossipKey); n != 0 && n != 16 && n != 24 && n != 32 {
		return fmt.Errorf("server: gossip key must be 16, 24 or 32 bytes, got %d", n)
	}
	if n := len(c.ClusterKey); n != 0 && n < MinClusterKey {
		return fmt.Errorf("server: the cluster key has %d bytes; it needs at least %d (e.g. openssl rand -base64 32)", n, MinClusterKey)
	}
	if len(c.GossipKey) == 0 && len(c.ClusterKey) > 0 {
		c.GossipKey = gossipKeyFrom(c.ClusterKey)
	}
	if err := c.checkExposure(); err != nil {
		return err
	}
	if c.MinVoters <= 0 {
		c.MinVoters = 3
	}
	switch c.JoinPolicy {
	case "":
		c.JoinPolicy = JoinAuto
	case JoinAuto, JoinManual:
	default:
		return fmt.Errorf("server: --join-policy %q: want auto or manual", c.JoinPolicy)
	}
	if c.BackupStallTimeout <= 0 {
		c.BackupStallTimeout = DefaultBackupStallTimeout
	}
	if c.MaxLearners <= 0 {
		c.MaxLearners = 8
	}
	if c.LearnerTimeout <= 0 {
		c.LearnerTimeout = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	d := core.DefaultConfig()
	if c.Core.TickInterval == 0 {
		c.Core.TickInterval, c.Core.ElectionTicks, c.Core.HeartbeatTicks = d.TickInterval, d.ElectionTicks, d.HeartbeatTicks
	}
	if c.Core.MaxDataSize == 0 {
		c.Core.MaxDataSize = d.MaxDataSize
	}
	c.Join = append([]string(nil), c.Join...)
	return nil
}

// MinClusterKey is the shortest cluster key a server accepts, in bytes.
const MinClusterKey = 32

// gossipKeyFrom derives the gossip encryption key from the cluster key, so
// that one secret serves both and neither reveals the other.
func gossipKeyFrom(clusterKey []byte) []byte {
	m := hmac.New(sha256.New, clusterKey)
	m.Write([]byte("grove gossip key"))
	return m.Sum(nil)
}

// checkExposure refuses to run peers or gossip unauthenticated on an
// address other processes' hosts can reach, unless Insecure says so. A
// loopback-only cluster (development, tests, the demo) trusts every local
// process and may run without keys.
func (c *Config) checkExposure() error {
	if c.Insecure {
		return nil
	}
	peerAuth := len(c.ClusterKey) > 0 || c.PeerTLS != nil
	for _, a := range []struct {
		flag, addr string
		secured    bool
		missing    string
	}{
		{"peer-addr", c.PeerAddr, peerAuth, "--cluster-key-file or peer TLS"},
		{"gossip-addr", c.GossipAddr, len(c.GossipKey) > 0, "--cluster-key-file"},
		{"http-addr", c.HTTPAddr, len(c.HTTPToken) > 0, "--token-file"},
	} {
		if a.secured || IsLoopback(a.addr) {
			continue
		}
		return fmt.Errorf("server: --%s %s is not a loopback address and nothing authenticates it: give %s, or --insecure to let any process that reaches it into the cluster", a.flag, a.addr, a.missing)
	}
	return nil
}

// IsLoopback reports whether a host:port listens on loopback only. An
// empty host, or 0.0.0.0, listens everywhere.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Join policies (Config.JoinPolicy).
const (
	JoinAuto   = "auto"
	JoinManual = "manual"
)
