package zkwire

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/fsm"
)

// builtOn is the build date srvr and envi report, in the format ZooKeeper
// 3.4-3.8 used and tools parse (MM/dd/yyyy HH:mm zone).
const builtOn = "11/25/2026 00:00 GMT"

// fourLetterWords are the words ZooKeeper 3.8 answers (all enabled, as
// with 4lw.commands.whitelist=*); another four bytes are a frame length,
// as on ZooKeeper.
var fourLetterWords = []string{"ruok", "srvr", "stat", "envi", "conf", "cons", "crst", "srst", "mntr",
	"wchs", "wchc", "wchp", "isro", "dump", "dirs", "gtmk", "stmk", "hash"}

// defaultTraceMask is the trace mask gtmk reports until stmk sets one:
// ZooKeeper 3.8's default (measured). Grove has no trace levels; the mask
// is kept only to be reported.
const defaultTraceMask = 306

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
	case "crst":
		for _, c := range s.connList() {
			c.received.Store(0)
			c.sent.Store(0)
			c.lat.reset()
		}
		return "Connection stats reset.\n"
	case "srst":
		s.received.Store(0)
		s.sent.Store(0)
		s.lat.reset()
		return "Server stats reset.\n"
	case "wchc", "wchp":
		return s.watchDump(cmd == "wchp")
	case "dirs":
		var size int64
		_ = s.n.View(func(tx *bbolt.Tx) error { size = tx.Size(); return nil })
		// Grove keeps its log in its data file (logdir: nothing apart).
		return fmt.Sprintf("datadir_size: %d\nlogdir_size: 0\n", size)
	case "gtmk", "stmk":
		return strconv.FormatInt(s.traceMask.Load(), 10)
	case "hash":
		d, applied, err := s.n.Digest()
		if err != nil {
			return ""
		}
		return fmt.Sprintf("%x: %d\n", applied, binary.BigEndian.Uint64(d[:8])&math.MaxInt64)
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
	lmin, lavg, lmax := s.lat.figures()
	fmt.Fprintf(&b, "Latency min/avg/max: %d/%s/%d\n", lmin, lavg, lmax)
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
	lmin, lavg, lmax := s.lat.figures()
	outstanding := 0
	for _, c := range s.connList() {
		outstanding += c.InFlight()
	}
	var dataSize int64
	_ = s.n.View(func(tx *bbolt.Tx) error {
		dataSize = fsm.ApproximateDataSize(fsm.Bolt(tx))
		return nil
	})
	fds, maxFDs := fdCounts()
	lines := [][2]string{
		{"zk_version", Version},
		{"zk_avg_latency", lavg},
		{"zk_max_latency", fmt.Sprint(lmax)},
		{"zk_min_latency", fmt.Sprint(lmin)},
		{"zk_packets_received", fmt.Sprint(s.received.Load())},
		{"zk_packets_sent", fmt.Sprint(s.sent.Load())},
		{"zk_num_alive_connections", fmt.Sprint(s.ConnCount())},
		{"zk_outstanding_requests", fmt.Sprint(outstanding)},
		{"zk_server_state", state},
		{"zk_znode_count", fmt.Sprint(st.Znodes)},
		{"zk_watch_count", fmt.Sprint(st.Watches)},
		{"zk_ephemerals_count", fmt.Sprint(s.ephemeralCount())},
		{"zk_open_session_count", fmt.Sprint(st.Sessions)},
		{"zk_uptime", fmt.Sprint(time.Since(s.start).Milliseconds())},
		{"zk_approximate_data_size", fmt.Sprint(dataSize)},
		{"zk_open_file_descriptor_count", fmt.Sprint(fds)},
		{"zk_max_file_descriptor_count", fmt.Sprint(maxFDs)},
	}
	if state == "leader" {
		lines = append(lines, [2]string{"zk_followers", fmt.Sprint(len(ns.Voters) + len(ns.Learners) - 1)},
			[2]string{"zk_synced_followers", fmt.Sprint(len(ns.Voters) - 1)},
			[2]string{"zk_synced_non_voting_followers", fmt.Sprint(len(ns.Learners))},
			[2]string{"zk_pending_syncs", "0"})
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
		all, err := fsm.AllSessionEphemerals(fsm.Bolt(tx))
		for _, se := range all {
			out[se.Session.ID] = se.Ephemerals
		}
		return err
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
	lmin, lavg, lmax := c.lat.connFigures()
	return fmt.Sprintf(" /%s[1](queued=%d,recved=%d,sent=%d,sid=0x%x,lop=NA,est=%d,to=%d,lcxid=0x%x,lzxid=0x%x,lresp=0,llat=%d,minlat=%d,avglat=%d,maxlat=%d)\n",
		addr, c.InFlight(), c.received.Load(), c.sent.Load(), c.sid.Load(), c.started.UnixMilli(), c.toMs.Load(), c.lastXid.Load(), c.lastZxid.Load(),
		c.lat.lastMs(), lmin, lavg, lmax)
}

// watchDump answers wchc (watched paths by session) and wchp (watching
// sessions by path), in ZooKeeper's layout, for this server's connections.
func (s *Server) watchDump(byPath bool) string {
	bySession := map[int64][]string{}
	for _, c := range s.connList() {
		if sid := c.sid.Load(); sid != 0 {
			bySession[sid] = s.n.WatchedPaths(uint64(sid)) // session ids are raft indexes
		}
	}
	var b strings.Builder
	if !byPath {
		for _, sid := range slices.Sorted(maps.Keys(bySession)) {
			if len(bySession[sid]) == 0 {
				continue
			}
			fmt.Fprintf(&b, "0x%x\n", sid)
			for _, p := range bySession[sid] {
				fmt.Fprintf(&b, "\t%s\n", p)
			}
		}
		return b.String() + "\n"
	}
	byPathMap := map[string][]int64{}
	for sid, paths := range bySession {
		for _, p := range paths {
			byPathMap[p] = append(byPathMap[p], sid)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(byPathMap)) {
		b.WriteString(p + "\n")
		for _, sid := range slices.Sorted(slices.Values(byPathMap[p])) {
			fmt.Fprintf(&b, "\t0x%x\n", sid)
		}
	}
	return b.String() + "\n"
}
