package server

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	stats := func() (sessions, znodes, watches float64) {
		st, err := s.node.Stats()
		if err != nil {
			return 0, 0, 0
		}
		return float64(st.Sessions), float64(st.Znodes), float64(st.Watches)
	}
	m.reg.MustRegister(
		m.persist, m.batch,
		gauge("grove_raft_term", "Current raft term.", func() float64 { return float64(s.node.Status().Term) }),
		gauge("grove_raft_commit_index", "Raft commit index.", func() float64 { return float64(s.node.Status().Commit) }),
		gauge("grove_raft_applied_index", "Applied index (zxid of the newest readable state).", func() float64 { return float64(s.node.AppliedIndex()) }),
		gauge("grove_raft_is_leader", "1 if this node is the leader.", func() float64 {
			if s.node.IsLeader() {
				return 1
			}
			return 0
		}),
		counter("grove_proposals_total", "Entries proposed through this node.", func() float64 {
			st, _ := s.node.Stats()
			return float64(st.Proposals)
		}),
		gauge("grove_sessions", "Open sessions.", func() float64 { v, _, _ := stats(); return v }),
		gauge("grove_znodes", "Znodes in the tree.", func() float64 { _, v, _ := stats(); return v }),
		gauge("grove_watches", "Watches registered on this node.", func() float64 { _, _, v := stats(); return v }),
	)
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
