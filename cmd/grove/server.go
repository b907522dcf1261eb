package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/accept"
	"github.com/grovekit/grove/server"
	"github.com/grovekit/grove/transport"
)

func runServer(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("server", stderr)
	var cfg server.Config
	var join listFlag
	var tlsCA, tlsCert, tlsKey, gossipKey, logLevel string
	var clientCA, clientCert, clientKey string
	var clusterKeyFile string
	var maxConns, maxConnsPerIP int
	var tokenFile, backupTokenFile string
	var httpCert, httpKey, httpCA string
	var allowedHosts listFlag
	var leaveOnTerm bool
	var superDigest, superDigestFile string
	fs.StringVar(&cfg.Name, "name", "", "unique node name (default: the host name)")
	fs.StringVar(&cfg.DataDir, "data-dir", defaultDataDir, "directory for the node's data")
	fs.StringVar(&cfg.GossipAddr, "gossip-addr", "127.0.0.1:7946", "gossip listen address")
	fs.StringVar(&cfg.PeerAddr, "peer-addr", "127.0.0.1:2380", "raft peer listen address")
	fs.StringVar(&cfg.ClientAddr, "client-addr", "127.0.0.1:2281", "native client port address (empty: none)")
	fs.StringVar(&cfg.ZKAddr, "zk-addr", "127.0.0.1:2181", "ZooKeeper client protocol address (empty: none)")
	fs.StringVar(&cfg.ZKSecureAddr, "zk-secure-addr", "", "ZooKeeper protocol over TLS (secureClientPort), with the --client-tls-* certificate (empty: none)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP address for /status, /healthz, /metrics")
	fs.Var(&join, "join", "gossip seeds, host:port[,host:port]")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, "form a new cluster once this many fresh voters see each other (default: 1 when --join is not given either: a single-node cluster)")
	fs.BoolVar(&cfg.Learner, "learner", false, "stay a non-voting learner (read scale-out)")
	fs.StringVar(&tlsCA, "peer-tls-ca", "", "CA file for mutual TLS between peers")
	fs.StringVar(&tlsCert, "peer-tls-cert", "", "certificate file for peer TLS")
	fs.StringVar(&tlsKey, "peer-tls-key", "", "key file for peer TLS")
	fs.BoolVar(&cfg.PeerTLSAnyName, "peer-tls-any-name", false, "accept any CA-signed peer certificate for any node (default: a certificate must name its node's --name)")
	fs.StringVar(&clientCert, "client-tls-cert", "", "certificate file: the client port speaks TLS")
	fs.StringVar(&clientKey, "client-tls-key", "", "key file for --client-tls-cert")
	fs.StringVar(&clientCA, "client-tls-ca", "", "CA file: the client port also requires client certificates from it")
	fs.StringVar(&clusterKeyFile, "cluster-key-file", os.Getenv("GROVE_CLUSTER_KEY_FILE"),
		"file holding the cluster's shared secret (>= 32 bytes, e.g. openssl rand -base64 32): authenticates peers, keys gossip (env GROVE_CLUSTER_KEY_FILE)")
	fs.IntVar(&maxConns, "max-client-conns", accept.DefaultTotal, "connections each client port (native, ZooKeeper) keeps open at once (0: no cap)")
	fs.IntVar(&maxConnsPerIP, "max-client-conns-per-ip", accept.DefaultPerIP, "connections each client port keeps open from one IP address, as ZooKeeper's maxClientCnxns (0: no cap)")
	fs.StringVar(&httpCert, "http-tls-cert", "", "certificate file: the HTTP port speaks HTTPS")
	fs.StringVar(&httpKey, "http-tls-key", "", "key file for --http-tls-cert")
	fs.StringVar(&httpCA, "http-tls-ca", "", "CA file verifying the other nodes' HTTPS certificates (a follower forwards writes to the leader)")
	fs.StringVar(&tokenFile, "token-file", os.Getenv("GROVE_TOKEN_FILE"),
		"file holding the bearer token the HTTP port requires for data, membership and debug endpoints (env GROVE_TOKEN_FILE)")
	fs.StringVar(&backupTokenFile, "backup-token-file", os.Getenv("GROVE_BACKUP_TOKEN_FILE"), "file holding the only token GET /v1/backup accepts (a backup role apart from --token-file's)")
	fs.DurationVar(&cfg.BackupStallTimeout, "backup-stall-timeout", server.DefaultBackupStallTimeout, "cut a backup download whose client takes no bytes for this long")
	fs.BoolVar(&cfg.ProtectMetrics, "protect-metrics", false, "require the --token-file token for /metrics too")
	fs.Var(&allowedHosts, "http-allowed-host", "DNS names clients may put in the HTTP Host header besides IP addresses and localhost (repeatable or comma-separated)")
	fs.StringVar(&cfg.JoinPolicy, "join-policy", server.JoinAuto, "auto: the leader adds gossip members that prove themselves on the peer port; manual: only those approved with grove members add NAME")
	fs.StringVar(&cfg.AuditLog, "audit-log", "", "append an audit log (JSON lines: writes, ACL changes, membership changes, backups, and who made them) to this file")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow non-loopback peer and gossip addresses without a cluster key or peer TLS")
	fs.StringVar(&gossipKey, "gossip-key", "", "deprecated (visible in ps and /debug/pprof/cmdline; use --cluster-key-file): base64 key (16, 24 or 32 bytes) encrypting gossip")
	fs.DurationVar(&cfg.CleanupDeadAfter, "cleanup-dead-after", 0, "remove voters dead this long (0: never; operators remove them)")
	fs.IntVar(&cfg.MinVoters, "min-voters", 3, "dead-voter cleanup never goes below this many voters")
	fs.BoolVar(&leaveOnTerm, "leave-on-terminate", false, "on SIGTERM/SIGINT leave the cluster for good (default: just stop; the node rejoins when restarted)")
	fs.StringVar(&superDigestFile, "super-digest-file", os.Getenv("GROVE_SUPER_DIGEST_FILE"), "file holding super:base64(sha1(super:password)) for operator access (env GROVE_SUPER_DIGEST_FILE)")
	fs.StringVar(&superDigest, "super-digest", "", "deprecated (visible in ps; use --super-digest-file): super:base64(sha1(super:password)) for operator access")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ on the HTTP address")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if err := requireNoArgs(fs); err != nil {
		return err
	}
	if cfg.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return usagef("--name is required: %v", err)
		}
		cfg.Name = h
	}
	cfg.Join = join
	if len(join) == 0 && !cfg.Learner && !flagSet(fs, "bootstrap-expect") {
		// Neither told to join nor how many to wait for: a fresh data dir
		// forms a cluster of one, usable at once (a used one restarts as
		// it was). Nodes added later join it.
		cfg.BootstrapExpect = 1
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return usagef("--log-level %q: %v", logLevel, err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// A loopback cluster given no secrets uses the per-user ones
	// (secrets.go), unless --insecure.
	if !cfg.Insecure && clusterKeyFile == "" && gossipKey == "" &&
		server.IsLoopback(cfg.PeerAddr) && server.IsLoopback(cfg.GossipAddr) {
		f, err := defaultSecretFile(defaultKeyName)
		if err != nil {
			return fmt.Errorf("the per-user cluster key (give --cluster-key-file, or --insecure): %w", err)
		}
		clusterKeyFile = f
	}
	if !cfg.Insecure && tokenFile == "" && server.IsLoopback(cfg.HTTPAddr) {
		f, err := defaultSecretFile(defaultTokenName)
		if err != nil {
			return fmt.Errorf("the per-user HTTP token (give --token-file, or --insecure): %w", err)
		}
		tokenFile = f
	}
	if clusterKeyFile != "" {
		k, err := readSecretFile(clusterKeyFile, server.MinClusterKey)
		if err != nil {
			return usagef("--cluster-key-file: %v", err)
		}
		cfg.ClusterKey = k
	}
	if tokenFile != "" {
		k, err := readSecretFile(tokenFile, minToken)
		if err != nil {
			return usagef("--token-file: %v", err)
		}
		cfg.HTTPToken = k
	}
	if backupTokenFile != "" {
		k, err := readSecretFile(backupTokenFile, minToken)
		if err != nil {
			return usagef("--backup-token-file: %v", err)
		}
		cfg.BackupToken = k
	}
	cfg.HTTPAllowedHosts = allowedHosts
	htls, err := httpTLS(httpCA, httpCert, httpKey)
	if err != nil {
		return err
	}
	cfg.HTTPTLS = htls
	if gossipKey != "" {
		k, err := base64.StdEncoding.DecodeString(gossipKey)
		if err != nil {
			return usagef("--gossip-key: not base64: %v", err)
		}
		cfg.GossipKey = k
	}
	if tlsCA != "" || tlsCert != "" || tlsKey != "" {
		if tlsCA == "" || tlsCert == "" || tlsKey == "" {
			return usagef("--peer-tls-ca, --peer-tls-cert and --peer-tls-key go together")
		}
		tc, err := transport.LoadTLS(tlsCA, tlsCert, tlsKey)
		if err != nil {
			return usagef("peer TLS: %v", err)
		}
		cfg.PeerTLS = tc
	}
	ctls, err := clientTLS(clientCA, clientCert, clientKey)
	if err != nil {
		return err
	}
	cfg.ClientTLS = ctls
	if superDigestFile != "" {
		d, err := readSecretFile(superDigestFile, len("super:")+1)
		if err != nil {
			return usagef("--super-digest-file: %v", err)
		}
		superDigest = string(d)
	}
	cfg.Core.SuperDigest = superDigest
	noCapZero := func(v int) int { // the flags' 0 means no cap; the configs' 0 means the default
		if v <= 0 {
			return -1
		}
		return v
	}
	cfg.Front.MaxConns, cfg.Front.MaxConnsPerIP = noCapZero(maxConns), noCapZero(maxConnsPerIP)
	cfg.ZK.MaxConns, cfg.ZK.MaxConnsPerIP = cfg.Front.MaxConns, cfg.Front.MaxConnsPerIP
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s, err := server.Start(ctx, cfg)
	if err != nil {
		if isUsage(err) {
			return usageError{err}
		}
		return err
	}
	cfg.Logger.Info("grove server running", "name", cfg.Name, "id", fmt.Sprintf("%x", s.ID()),
		"cluster_key", cmp.Or(clusterKeyFile, "none"), "http_token", cmp.Or(tokenFile, "none"),
		"peer", s.PeerAddr(), "client", s.ClientAddr(), "zk", s.ZKAddr(), "gossip", s.GossipAddr(), "http", s.HTTPAddr())
	select {
	case <-ctx.Done():
		cfg.Logger.Info("terminating", "leave", leaveOnTerm)
		if leaveOnTerm {
			return s.Close()
		}
		return s.Stop()
	case <-s.Left():
		cfg.Logger.Info("left the cluster (grove members leave)")
		return nil
	case <-s.Done():
		if s.Leaving() { // the node stops as part of the leave
			<-s.Left()
			cfg.Logger.Info("left the cluster (grove members leave)")
			return nil
		}
		err := s.Stop()
		if err == nil {
			err = errors.New("node stopped")
		}
		return err
	}
}

// isUsage reports start-up errors that are the operator's to fix: bad
// settings, an unusable or foreign data dir, addresses in use, a corrupt
// data file.
func isUsage(err error) bool {
	var ce *server.ConfigError
	return errors.As(err, &ce) || errors.Is(err, grove.ErrCorrupt)
}

// clientTLS builds the client port's TLS config from the flags (nil:
// none); a CA makes the port require client certificates from it.
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	return portTLS("client", caFile, certFile, keyFile, true)
}

// minToken is the shortest HTTP token the server accepts.
const minToken = 16

// readSecretFile reads a secret of at least min bytes from a file;
// surrounding white space (the newline an editor or echo adds) is not part
// of it.
func readSecretFile(path string, min int) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k := bytes.TrimSpace(b)
	if len(k) < min {
		return nil, fmt.Errorf("%s holds %d bytes; it needs at least %d (e.g. openssl rand -base64 32 > %s)", path, len(k), min, path)
	}
	return k, nil
}

// httpTLS builds the HTTP port's TLS config from the flags (nil: plain
// HTTP); a CA verifies the other nodes' HTTPS when a follower forwards.
func httpTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	return portTLS("http", caFile, certFile, keyFile, false)
}

// portTLS builds a server port's TLS config from its --PORT-tls-cert,
// --PORT-tls-key and --PORT-tls-ca flags (nil: none). The CA verifies
// client certificates (forClients) or the servers the port's node dials.
func portTLS(port, caFile, certFile, keyFile string, forClients bool) (*tls.Config, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, usagef("--%[1]s-tls-cert and --%[1]s-tls-key go together (--%[1]s-tls-ca needs them)", port)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, usagef("%s TLS: %v", port, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := certPool("--"+port+"-tls-ca", caFile)
		if err != nil {
			return nil, err
		}
		if forClients {
			cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		} else {
			cfg.RootCAs = pool
		}
	}
	return cfg, nil
}

// certPool reads the PEM certificates of file (given by flag) into a
// pool.
func certPool(flag, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("%s: no certificate in %s", flag, file)
	}
	return pool, nil
}

// defaultDataDir is where grove server keeps its data without --data-dir:
// in the working directory, as etcd's default.etcd.
const defaultDataDir = "grove-data"
