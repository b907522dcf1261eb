package zkwire

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/fsm"
)

// builtOn is the build date srvr and envi report, in the format ZooKeeper
// 3.4-3.8 used and tools parse (MM/dd/yyyy HH:mm zone).
const builtOn = "11/25/2026 00:00 GMT"

var fourLetterWords = []string{"ruok", "srvr", "stat", "envi", "conf", "cons", "mntr", "wchs", "isro", "dump"}

func isFourLetterWord(s string) bool { return slices.Contains(fourLetterWords, s) }

// mode is the server's role in ZooKeeper's words (the "Mode:" line tools
// read to find the leader).
func (s *Server) mode() string {
	st := s.n.Status()
	switch {
	case st.Role == core.RoleLeader && len(st.Voters) == 1 && len(st.Learners) == 0:
		return "standalone"
	case st.Role == core.RoleLeader:
		return "leader"
	case st.Role == core.RoleLearner:
		return "observer"
	}
	return "follower"
}

// fourLetterWord answers one four-letter word.
func (s *Server) fourLetterWord(cmd string) string {
	switch cmd {
	case "ruok":
		return "imok"
	case "isro":
		return "rw"
	case "srvr":
		return s.srvr(false)
	case "stat":
		return s.srvr(true)
	case "envi":
		return s.envi()
	case "conf":
		return s.conf()
	case "cons":
		var b strings.Builder
		for _, c := range s.connList() {
			b.WriteString(c.describe(true))
		}
		return b.String() + "\n"
	case "mntr":
		return s.mntr()
	case "wchs":
		sessions := 0
		for _, c := range s.connList() {
			if sid := c.sid.Load(); sid != 0 && s.n.HasWatches(uint64(sid)) {
				sessions++
			}
		}
		st, _ := s.n.Stats()
		return fmt.Sprintf("%d connections watching %d paths\nTotal watches:%d\n", sessions, st.Watches, st.Watches)
	case "dump":
		return s.dump()
	}
	return ""
}

func (s *Server) srvr(withClients bool) string {
	st, _ := s.n.Stats()
	var b strings.Builder
	fmt.Fprintf(&b, "Zookeeper version: %s, built on %s\n", Version, builtOn)
	if withClients {
		b.WriteString("Clients:\n")
		for _, c := range s.connList() {
			b.WriteString(c.describe(false))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Latency min/avg/max: 0/0.0/0\n")
	fmt.Fprintf(&b, "Received: %d\nSent: %d\nConnections: %d\nOutstanding: 0\n", s.received.Load(), s.sent.Load(), s.ConnCount())
	fmt.Fprintf(&b, "Zxid: 0x%x\nMode: %s\nNode count: %d\n", s.n.AppliedIndex(), s.mode(), st.Znodes)
	return b.String()
}

func (s *Server) envi() string {
	host, _ := os.Hostname()
	wd, _ := os.Getwd()
	lines := []string{
		"Environment:",
		"zookeeper.version=" + Version + ", built on " + builtOn,
		"host.name=" + host,
		"java.version=" + runtime.Version(),
		"java.vendor=grove",
		"os.name=" + runtime.GOOS,
		"os.arch=" + runtime.GOARCH,
		"user.dir=" + wd,
	}
	return strings.Join(lines, "\n") + "\n"
}

func (s *Server) conf() string {
	keys := make([]string, 0, len(s.cfg.Conf))
	for k := range s.cfg.Conf {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "serverId=%d\n", s.n.ID())
	fmt.Fprintf(&b, "jute.maxbuffer=%d\n", s.cfg.MaxBuffer)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, s.cfg.Conf[k])
	}
	return b.String()
}

func (s *Server) mntr() string {
	st, _ := s.n.Stats()
	ns := s.n.Status()
	state := s.mode()
	lines := [][2]string{
		{"zk_version", Version},
		{"zk_avg_latency", "0"},
		{"zk_max_latency", "0"},
		{"zk_min_latency", "0"},
		{"zk_packets_received", fmt.Sprint(s.received.Load())},
		{"zk_packets_sent", fmt.Sprint(s.sent.Load())},
		{"zk_num_alive_connections", fmt.Sprint(s.ConnCount())},
		{"zk_outstanding_requests", "0"},
		{"zk_server_state", state},
		{"zk_znode_count", fmt.Sprint(st.Znodes)},
		{"zk_watch_count", fmt.Sprint(st.Watches)},
		{"zk_ephemerals_count", fmt.Sprint(s.ephemeralCount())},
		{"zk_open_session_count", fmt.Sprint(st.Sessions)},
		{"zk_uptime", fmt.Sprint(time.Since(s.start).Milliseconds())},
	}
	if state == "leader" {
		lines = append(lines, [2]string{"zk_followers", fmt.Sprint(len(ns.Voters) + len(ns.Learners) - 1)},
			[2]string{"zk_synced_followers", fmt.Sprint(len(ns.Voters) - 1)})
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s\t%s\n", l[0], l[1])
	}
	return b.String()
}

// sessionEphemerals lists every session and its ephemeral nodes.
func (s *Server) sessionEphemerals() (map[uint64][]string, error) {
	out := map[uint64][]string{}
	err := s.n.View(func(tx *bbolt.Tx) error {
		sessions, err := fsm.Sessions(fsm.Bolt(tx))
		if err != nil {
			return err
		}
		for _, ss := range sessions {
			paths, err := fsm.Ephemerals(fsm.Bolt(tx), ss.ID, "/")
			if err != nil {
				return err
			}
			out[ss.ID] = paths
		}
		return nil
	})
	return out, err
}

func (s *Server) ephemeralCount() int {
	m, _ := s.sessionEphemerals()
	n := 0
	for _, p := range m {
		n += len(p)
	}
	return n
}

func (s *Server) dump() string {
	m, err := s.sessionEphemerals()
	if err != nil {
		return "dump failed: " + err.Error() + "\n"
	}
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	fmt.Fprintf(&b, "SessionTracker dump:\nGlobal Sessions(%d):\n", len(ids))
	for _, id := range ids {
		fmt.Fprintf(&b, "0x%x\n", id)
	}
	with := 0
	for _, id := range ids {
		if len(m[id]) > 0 {
			with++
		}
	}
	fmt.Fprintf(&b, "ephemeral nodes dump:\nSessions with Ephemerals (%d):\n", with)
	for _, id := range ids {
		if len(m[id]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "0x%x:\n", id)
		for _, p := range m[id] {
			fmt.Fprintf(&b, "\t%s\n", p)
		}
	}
	return b.String()
}

// describe is the connection's line in cons (long) and stat (short).
func (c *conn) describe(long bool) string {
	addr := c.nc.RemoteAddr().String()
	if !long {
		return fmt.Sprintf(" /%s[1](queued=0,recved=%d,sent=%d)\n", addr, c.received.Load(), c.sent.Load())
	}
	return fmt.Sprintf(" /%s[1](queued=0,recved=%d,sent=%d,sid=0x%x,lop=NA,est=%d,to=%d,lcxid=0x%x,lzxid=0x%x,lresp=0,llat=0,minlat=0,avglat=0,maxlat=0)\n",
		addr, c.received.Load(), c.sent.Load(), c.sid.Load(), c.started.UnixMilli(), c.toMs.Load(), c.lastXid.Load(), c.lastZxid.Load())
}
