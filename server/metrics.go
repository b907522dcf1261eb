package server

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
)

// metrics exposes the node's numbers in Prometheus format, on a registry of
// its own (never the global one): the node's own families (grove_*), build
// information, and the Go runtime and process collectors. docs/operations.md
// lists every family and what to alert on.
type metrics struct {
	reg          *prometheus.Registry
	logFsync     prometheus.Histogram
	batch        prometheus.Histogram
	stateCommit  prometheus.Histogram
	apply        prometheus.Histogram
	snapshot     *prometheus.HistogramVec
	peerRTT      *prometheus.HistogramVec
	requests     *prometheus.HistogramVec
	leaderChange prometheus.Counter
}

// latencyBuckets span 50 µs to about 1.6 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.00005, 2, 16)

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.logFsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "grove_log_fsync_duration_seconds",
		Help:    "Duration of each raft log write with its fsync: the only fsync a write waits for.",
		Buckets: latencyBuckets,
	})
	m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "grove_log_append_entries",
		Help:    "Log entries appended per log write (group commit size).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	m.stateCommit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "grove_state_commit_duration_seconds",
		Help:    "Duration of each commit of applied changes to the state file (off the write path), fsync included.",
		Buckets: latencyBuckets,
	})
	m.apply = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "grove_apply_duration_seconds",
		Help:    "Duration of applying a batch of committed entries in memory and answering their waiters.",
		Buckets: latencyBuckets,
	})
	m.snapshot = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "grove_snapshot_duration_seconds",
		Help:    "Duration of streaming a snapshot to a follower (kind=send) or installing one from the leader (kind=install).",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	}, []string{"kind"})
	m.peerRTT = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "grove_peer_round_trip_seconds",
		Help:    "Heartbeat round trip from this leader to each peer and back.",
		Buckets: latencyBuckets,
	}, []string{"peer"})
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "grove_request_duration_seconds",
		Help:    "Client requests from arrival to answer, by protocol (native, zookeeper) and operation.",
		Buckets: latencyBuckets,
	}, []string{"protocol", "op"})
	m.leaderChange = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "grove_leader_changes_total",
		Help: "Leaders this node learned of: one per election it saw (the node's first leader included).",
	})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "grove_build_info",
		Help:        "Always 1; the labels name the Grove release and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": grove.Version, "goversion": runtime.Version()},
	})
	build.Set(1)
	for _, kind := range []string{"send", "install"} {
		m.snapshot.WithLabelValues(kind) // exported before the first snapshot
	}
	m.reg.MustRegister(m.logFsync, m.batch, m.stateCommit, m.apply, m.snapshot, m.peerRTT, m.requests, m.leaderChange, build,
		&nodeCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObservePersist implements core.Observer.
func (m *metrics) ObservePersist(d time.Duration, appended, _ int) {
	m.logFsync.Observe(d.Seconds())
	if appended > 0 {
		m.batch.Observe(float64(appended))
	}
}

// ObserveStateCommit implements core.Observer.
func (m *metrics) ObserveStateCommit(d time.Duration) { m.stateCommit.Observe(d.Seconds()) }

// ObserveApply implements core.Observer.
func (m *metrics) ObserveApply(d time.Duration, _ int) { m.apply.Observe(d.Seconds()) }

// ObserveSnapshot implements core.Observer.
func (m *metrics) ObserveSnapshot(kind string, d time.Duration) {
	m.snapshot.WithLabelValues(kind).Observe(d.Seconds())
}

// ObservePeerRTT implements core.Observer.
func (m *metrics) ObservePeerRTT(peer uint64, d time.Duration) {
	m.peerRTT.WithLabelValues(idString(peer)).Observe(d.Seconds())
}

// ObserveLeaderChange implements core.Observer: an election that passes
// through "no leader" counts once, when the new leader is known.
func (m *metrics) ObserveLeaderChange(leader uint64) {
	if leader != 0 {
		m.leaderChange.Inc()
	}
}

// observeRequests returns the request observer of a client port speaking
// protocol.
func (m *metrics) observeRequests(protocol string) func(op string, d time.Duration) {
	return func(op string, d time.Duration) {
		m.requests.WithLabelValues(protocol, op).Observe(d.Seconds())
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// nodeCollector reads the node's status and counts once per scrape (the
// counts walk the state's buckets, so they are not read per metric).
type nodeCollector struct{ s *Server }

var (
	descTerm      = prometheus.NewDesc("grove_raft_term", "Current raft term.", nil, nil)
	descCommit    = prometheus.NewDesc("grove_raft_commit_index", "Raft commit index.", nil, nil)
	descApplied   = prometheus.NewDesc("grove_raft_applied_index", "Applied index (zxid of the newest readable state).", nil, nil)
	descLeader    = prometheus.NewDesc("grove_raft_is_leader", "1 if this node is the leader.", nil, nil)
	descHasLeader = prometheus.NewDesc("grove_leader_present", "1 if this node knows a leader (0 during an election or without quorum).", nil, nil)
	descDropped   = prometheus.NewDesc("grove_proposals_dropped_total", "Proposals raft refused (no leader, or a leadership transfer under way); their writes were proposed again.", nil, nil)
	descPending   = prometheus.NewDesc("grove_proposals_pending", "Writes proposed through this node and not yet answered.", nil, nil)
	descWritten   = prometheus.NewDesc("grove_log_entries_written_total", "Raft log entries made durable on this node.", nil, nil)
	descAppliedN  = prometheus.NewDesc("grove_entries_applied_total", "Committed entries applied on this node.", nil, nil)
	descSnapsSent = prometheus.NewDesc("grove_snapshots_sent_total", "Snapshots streamed to followers.", nil, nil)
	descSnapsIn   = prometheus.NewDesc("grove_snapshots_installed_total", "Snapshots this node caught up from.", nil, nil)
	descExpired   = prometheus.NewDesc("grove_session_expiries_total", "Sessions closed because their client stopped sending heartbeats (applied on this node).", nil, nil)
	descStateSize = prometheus.NewDesc("grove_state_file_size_bytes", "Size of the node's state file (grove.db); it never shrinks by itself.", nil, nil)
	descProposals = prometheus.NewDesc("grove_proposals_total", "Entries proposed through this node.", nil, nil)
	descSessions  = prometheus.NewDesc("grove_sessions", "Open sessions.", nil, nil)
	descZnodes    = prometheus.NewDesc("grove_znodes", "Znodes in the tree.", nil, nil)
	descWatches   = prometheus.NewDesc("grove_watches", "Watches registered on this node.", nil, nil)

	descPeerRefused = prometheus.NewDesc("grove_peer_messages_refused_total",
		"Peer messages dropped: claiming another sender, a type peers never send, or breaking raft's invariants.", nil, nil)
	descPeerAuthFailures = prometheus.NewDesc("grove_peer_auth_failures_total",
		"Peer connections, either way, refused for a missing or wrong cluster-key proof.", nil, nil)
	descPeerHandshakeFailures = prometheus.NewDesc("grove_peer_handshake_failures_total",
		"Peer connections, either way, whose TLS or hello handshake failed (auth failures included).", nil, nil)
	descCorrupt = prometheus.NewDesc("grove_corrupt_records_total",
		"Znode records found damaged (checksum mismatch) by reads and scrubs; anything but 0 means a damaged data file.", nil, nil)
	descJoinsRefused = prometheus.NewDesc("grove_joins_refused_total",
		"Gossip members the leader did not add because they failed to prove themselves on the peer port.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descCommit, descApplied, descLeader, descProposals, descSessions, descZnodes, descWatches,
		descHasLeader, descDropped, descPending, descWritten, descAppliedN, descSnapsSent, descSnapsIn, descExpired, descStateSize,
		descPeerRefused, descPeerAuthFailures, descPeerHandshakeFailures, descJoinsRefused, descCorrupt} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.node.Status()
	leader := 0.0
	if st.Role == core.RoleLeader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(st.Commit))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(st.Applied))
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, leader)
	hasLeader := 0.0
	if st.Leader != 0 {
		hasLeader = 1
	}
	ch <- prometheus.MustNewConstMetric(descHasLeader, prometheus.GaugeValue, hasLeader)

	ts := c.s.tr.Stats()
	ch <- prometheus.MustNewConstMetric(descPeerAuthFailures, prometheus.CounterValue, float64(ts.AuthFailures))
	ch <- prometheus.MustNewConstMetric(descPeerHandshakeFailures, prometheus.CounterValue, float64(ts.HandshakeFailures))
	ch <- prometheus.MustNewConstMetric(descJoinsRefused, prometheus.CounterValue, float64(c.s.joinsRefused.Load()))
	stats, err := c.s.node.Stats()
	if err != nil {
		c.s.log.Warn("metrics: read node stats", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descProposals, prometheus.CounterValue, float64(stats.Proposals))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(stats.ProposalsDropped))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(stats.ProposalsPending))
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(stats.EntriesWritten))
	ch <- prometheus.MustNewConstMetric(descAppliedN, prometheus.CounterValue, float64(stats.EntriesApplied))
	ch <- prometheus.MustNewConstMetric(descSnapsSent, prometheus.CounterValue, float64(stats.SnapshotsSent))
	ch <- prometheus.MustNewConstMetric(descSnapsIn, prometheus.CounterValue, float64(stats.SnapshotsInstalled))
	ch <- prometheus.MustNewConstMetric(descExpired, prometheus.CounterValue, float64(stats.SessionsExpired))
	ch <- prometheus.MustNewConstMetric(descStateSize, prometheus.GaugeValue, float64(stats.StateFileBytes))
	ch <- prometheus.MustNewConstMetric(descPeerRefused, prometheus.CounterValue, float64(stats.PeerMessagesRefused))
	ch <- prometheus.MustNewConstMetric(descCorrupt, prometheus.CounterValue, float64(stats.CorruptRecords))
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(stats.Sessions))
	ch <- prometheus.MustNewConstMetric(descZnodes, prometheus.GaugeValue, float64(stats.Znodes))
	ch <- prometheus.MustNewConstMetric(descWatches, prometheus.GaugeValue, float64(stats.Watches))
}
