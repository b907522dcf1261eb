package server

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/grovekit/grove/core"
)

// metrics exposes the node's numbers in Prometheus format, on a registry of
// its own (never the global one).
type metrics struct {
	reg     *prometheus.Registry
	persist prometheus.Histogram
	batch   prometheus.Histogram
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.persist = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "grove_fsync_seconds",
		Help:    "Duration of each Ready transaction commit, fsync included.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "grove_persist_entries",
		Help:    "Log entries appended per Ready transaction (group commit size).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	m.reg.MustRegister(m.persist, m.batch, &nodeCollector{s: s})
	return m
}

// ObservePersist implements core.Observer.
func (m *metrics) ObservePersist(d time.Duration, appended, _ int) {
	m.persist.Observe(d.Seconds())
	if appended > 0 {
		m.batch.Observe(float64(appended))
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
	ch <- prometheus.MustNewConstMetric(descPeerRefused, prometheus.CounterValue, float64(stats.PeerMessagesRefused))
	ch <- prometheus.MustNewConstMetric(descCorrupt, prometheus.CounterValue, float64(stats.CorruptRecords))
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(stats.Sessions))
	ch <- prometheus.MustNewConstMetric(descZnodes, prometheus.GaugeValue, float64(stats.Znodes))
	ch <- prometheus.MustNewConstMetric(descWatches, prometheus.GaugeValue, float64(stats.Watches))
}
