package server

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/audit"
	"github.com/grovekit/grove/internal/fsm"
	"github.com/grovekit/grove/membership"
)

// routes serves:
//
//	GET  /status            raft and gossip state as JSON
//	GET  /healthz           200 when in a cluster with a leader and every client port accepts, else 503
//	GET  /readyz            as /healthz, and this node has applied everything it knows committed
//	GET  /metrics           Prometheus text format
//	GET  /members           gossip members joined with raft roles
//	POST /members/remove    ?name=NAME: remove a member (forwarded to the leader)
//	POST /members/add       ?name=NAME: approve a gossip member to join (--join-policy manual)
//	GET  /v1/digest         state digest and applied index (for checks)
//	GET  /v1/backup         a consistent backup stream (package backup)
//	GET  /debug/pprof/...   Go's profiler, with Config.Pprof (--pprof)
//	GET|PUT|DELETE /v1/znode/PATH   a small data API (see znode.go)
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", s.handleStatus)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.Handle("GET /metrics", s.met.handler())
	mux.HandleFunc("GET /members", s.handleMembers)
	mux.HandleFunc("GET /sessions", s.handleSessions)
	mux.HandleFunc("POST /defrag", s.handleDefrag)
	mux.HandleFunc("POST /members/remove", s.handleRemove)
	mux.HandleFunc("POST /members/add", s.handleAdd)
	mux.HandleFunc("POST /members/transfer-leader", s.handleTransferLeader)
	mux.HandleFunc("POST /members/leave", s.handleLeave)
	mux.HandleFunc("GET /v1/digest", s.handleDigest)
	mux.HandleFunc("GET /v1/backup", s.handleBackup)
	mux.HandleFunc("/v1/znode/", s.handleZnode)
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", handleCmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// StatusMember is one raft member in /status.
type StatusMember struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// GossipMember is one gossip member in /status and /members.
type GossipMember struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	ID       string `json:"id"`
	Role     string `json:"role"`
	RaftRole string `json:"raft_role"` // voter, learner or none
	PeerAddr string `json:"peer_addr"`
	HTTPAddr string `json:"http_addr"`
}

// StatusReply is the JSON of GET /status.
type StatusReply struct {
	Name          string         `json:"name"`
	ID            string         `json:"id"`
	Role          string         `json:"role"`
	Leader        string         `json:"leader"`
	LeaderID      string         `json:"leader_id"`
	Term          uint64         `json:"term"`
	AppliedIndex  uint64         `json:"applied_index"`
	CommitIndex   uint64         `json:"commit_index"`
	ClientAddr    string         `json:"client_addr"`
	ClientConns   int            `json:"client_conns"`
	Voters        []StatusMember `json:"voters"`
	Learners      []StatusMember `json:"learners"`
	GossipMembers []GossipMember `json:"gossip_members"`
	// Drift lists disagreements between gossip and the raft configuration,
	// so they never go unnoticed.
	Drift []string `json:"drift"`
	// CorruptRecords counts znode records this process found damaged
	// (checksum mismatch), by reads and by the background scrub. Anything
	// but 0 means the data file is damaged: replace the node (restore it
	// from the others) and check its disk.
	CorruptRecords uint64 `json:"corrupt_records"`
	// AwaitingApproval lists the gossip members waiting for
	// grove members add (--join-policy manual; on the leader).
	AwaitingApproval []string `json:"awaiting_approval"`
	// Version is the server's Grove release (grove.Version).
	Version string `json:"version"`
	// UptimeSeconds is how long the server has run.
	UptimeSeconds float64 `json:"uptime_seconds"`
	// DataSizeBytes is the size of the node's data file.
	DataSizeBytes int64 `json:"data_size_bytes"`
}

func idString(id uint64) string { return strconv.FormatUint(id, 16) }

// Status builds the /status reply.
func (s *Server) Status() StatusReply {
	st := s.node.Status()
	members := s.gossip.Members()
	names := map[uint64]membership.Member{}
	for _, m := range members {
		names[m.RaftID] = m
	}
	r := StatusReply{
		Name: s.cfg.Name, ID: idString(s.id), Role: string(st.Role),
		LeaderID: idString(st.Leader), Term: st.Term, AppliedIndex: st.Applied, CommitIndex: st.Commit,
		ClientAddr: s.ClientAddr(), ClientConns: s.ClientConns(),
		Voters: []StatusMember{}, Learners: []StatusMember{}, GossipMembers: []GossipMember{}, Drift: []string{},
		CorruptRecords: fsm.CorruptRecords(), AwaitingApproval: s.awaitingApproval(),
		Version: grove.Version, UptimeSeconds: time.Since(s.started).Seconds(),
	}
	_ = s.node.View(func(tx *bbolt.Tx) error { r.DataSizeBytes = tx.Size(); return nil })
	if st.Leader == 0 {
		r.LeaderID = ""
	} else {
		r.Leader = names[st.Leader].Name
	}
	for _, id := range st.Voters {
		r.Voters = append(r.Voters, StatusMember{ID: idString(id), Name: names[id].Name})
		if m, ok := names[id]; !ok || m.State != membership.StateAlive {
			r.Drift = append(r.Drift, fmt.Sprintf("voter %s (%s) is not alive in gossip", idString(id), names[id].Name))
		}
	}
	for _, id := range st.Learners {
		r.Learners = append(r.Learners, StatusMember{ID: idString(id), Name: names[id].Name})
	}
	for _, m := range members {
		raftRole := "none"
		switch {
		case slices.Contains(st.Voters, m.RaftID):
			raftRole = "voter"
		case slices.Contains(st.Learners, m.RaftID):
			raftRole = "learner"
		case m.State == membership.StateAlive:
			r.Drift = append(r.Drift, fmt.Sprintf("gossip member %s is not in the raft configuration", m.Name))
		}
		r.GossipMembers = append(r.GossipMembers, GossipMember{
			Name: m.Name, State: m.State, ID: idString(m.RaftID), Role: m.Role, RaftRole: raftRole,
			PeerAddr: m.PeerAddr, HTTPAddr: m.HTTPAddr,
		})
	}
	return r
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]any{"error": err.Error(), "code": grove.ErrorCode(err)})
}

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Status())
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	s.writeHealth(w, "healthy", false)
}

// handleReadyz answers 200 when the node is healthy (handleHealthz) and
// has applied every entry it knows committed: ready to serve reads that
// are up to date, e.g. after a restart or a snapshot install.
func (s *Server) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	s.writeHealth(w, "ready", true)
}

// writeHealth answers a probe: 200 with {key: true} when the node is in a
// cluster with a leader and every client port accepts (and, with
// caughtUp, it has applied all it knows committed), else 503 with what
// is missing.
func (s *Server) writeHealth(w http.ResponseWriter, key string, caughtUp bool) {
	st := s.node.Status()
	in := slices.Contains(st.Voters, s.id) || slices.Contains(st.Learners, s.id)
	accepting := s.clientPortsAccepting()
	ok := st.Leader != 0 && in && accepting && (!caughtUp || st.Applied >= st.Commit)
	if ok {
		writeJSON(w, http.StatusOK, map[string]any{key: true})
		return
	}
	body := map[string]any{key: false, "leader": st.Leader != 0, "member": in, "accepting": accepting}
	if caughtUp {
		body["applied"], body["commit"] = st.Applied, st.Commit
	}
	writeJSON(w, http.StatusServiceUnavailable, body)
}

// clientPortsAccepting reports whether every client port takes
// connections (one that fails to accept, out of file descriptors say, makes
// the node unhealthy until it recovers).
func (s *Server) clientPortsAccepting() bool {
	return (s.front == nil || s.front.Accepting()) && (s.zk == nil || s.zk.Accepting())
}

func (s *Server) handleMembers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Status().GossipMembers)
}

func (s *Server) handleDigest(w http.ResponseWriter, _ *http.Request) {
	d, applied, err := s.node.Digest()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"digest": hex.EncodeToString(d[:]), "applied_index": applied})
}

// handleRemove removes a member by name (or ?id=hex). A follower forwards
// the request to the leader's HTTP address.
func (s *Server) handleRemove(w http.ResponseWriter, r *http.Request) {
	id, err := s.resolveMember(r.URL.Query().Get("name"), r.URL.Query().Get("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	if !s.node.IsLeader() {
		s.forwardToLeader(w, r)
		return
	}
	err = s.removeMember(r.Context(), id)
	s.auditHTTP(r, "member", "remove", idString(id), err)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": idString(id)})
}

// handleAdd approves the gossip member named name to join the raft
// configuration (JoinPolicy manual); the leader adds it once it proves
// itself on the peer port. Forwarded to the leader.
func (s *Server) handleAdd(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		writeError(w, http.StatusBadRequest, fmt.Errorf("server: members/add needs ?name=: %w", grove.ErrBadArguments))
		return
	}
	if !s.node.IsLeader() {
		s.forwardToLeader(w, r)
		return
	}
	s.approve(name)
	s.auditHTTP(r, "member", "approve", name, nil)
	writeJSON(w, http.StatusAccepted, map[string]any{"approved": name,
		"note": "the leader adds it as a learner once it has proved itself on the peer port, and promotes it once caught up"})
}

// DefragReply is the JSON of POST /defrag.
type DefragReply struct {
	BeforeBytes int64 `json:"before_bytes"`
	AfterBytes  int64 `json:"after_bytes"`
	// HandedOverTo names the member this node, leading, handed leadership
	// to first ("" if it was not leading).
	HandedOverTo string `json:"handed_over_to,omitempty"`
}

// handleDefrag compacts this node's state file online (core.Node.Defrag).
// A leader of a cluster with other voters first hands leadership over, so
// its pause does not cost the cluster an election.
func (s *Server) handleDefrag(w http.ResponseWriter, r *http.Request) {
	// A big file takes longer than the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	var reply DefragReply
	if s.node.IsLeader() && len(s.node.Status().Voters) > 1 {
		ctx, cancel := context.WithTimeout(r.Context(), s.handOffTimeout())
		to, err := s.node.TransferLeadership(ctx, 0)
		cancel()
		if err != nil {
			s.auditHTTP(r, "node", "defrag", s.cfg.Name, err)
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("server: hand leadership over before the defrag: %w", err))
			return
		}
		reply.HandedOverTo = s.memberName(to)
	}
	before, after, err := s.node.Defrag(r.Context())
	s.auditHTTP(r, "node", "defrag", s.cfg.Name, err)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	reply.BeforeBytes, reply.AfterBytes = before, after
	writeJSON(w, http.StatusOK, reply)
}

// SessionInfo is one open session in GET /sessions.
type SessionInfo struct {
	// ID is the session ID in hex, as ZooKeeper tools show it.
	ID        string `json:"id"`
	TimeoutMs int64  `json:"timeout_ms"`
	// EphemeralCount is how many ephemeral znodes the session owns;
	// Ephemerals lists their paths with ?ephemerals=1.
	EphemeralCount int      `json:"ephemeral_count"`
	Ephemerals     []string `json:"ephemerals,omitempty"`
}

// handleSessions lists the cluster's open sessions (the replicated
// state, as of every change applied here), in ID order, with their
// ephemeral znodes' count, or paths with ?ephemerals=1.
func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request) {
	withPaths := r.URL.Query().Get("ephemerals") == "1"
	out := []SessionInfo{}
	err := s.node.View(func(tx *bbolt.Tx) error {
		all, err := fsm.AllSessionEphemerals(fsm.Bolt(tx))
		for _, se := range all {
			info := SessionInfo{ID: fmt.Sprintf("0x%x", se.Session.ID), TimeoutMs: int64(se.Session.TimeoutMs), EphemeralCount: len(se.Ephemerals)}
			if withPaths {
				info.Ephemerals = se.Ephemerals
			}
			out = append(out, info)
		}
		return err
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// handleLeave makes this node leave the cluster for good, as SIGTERM does
// under --leave-on-terminate: it answers first, then leaves and its
// process exits. The cluster's last voter cannot leave.
func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request) {
	if st := s.node.Status(); len(st.Voters) == 1 && st.Voters[0] == s.id {
		err := fmt.Errorf("server: %s is the cluster's last voter; it cannot leave: %w", s.cfg.Name, grove.ErrBadArguments)
		s.auditHTTP(r, "member", "leave", s.cfg.Name, err)
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s.auditHTTP(r, "member", "leave", s.cfg.Name, nil)
	writeJSON(w, http.StatusAccepted, map[string]any{"leaving": s.cfg.Name})
	s.Leave()
}

// handleTransferLeader hands leadership to the member named by ?name= or
// ?id=, or without either to the most caught-up voter, and answers once
// it leads. Forwarded to the leader.
func (s *Server) handleTransferLeader(w http.ResponseWriter, r *http.Request) {
	var to uint64
	if name, hexID := r.URL.Query().Get("name"), r.URL.Query().Get("id"); name != "" || hexID != "" {
		id, err := s.resolveMember(name, hexID)
		if err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		to = id
	}
	if !s.node.IsLeader() {
		s.forwardToLeader(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.handOffTimeout())
	defer cancel()
	lead, err := s.node.TransferLeadership(ctx, to)
	s.auditHTTP(r, "member", "transfer-leader", idString(to), err)
	switch {
	case errors.Is(err, grove.ErrBadArguments):
		writeError(w, http.StatusBadRequest, err)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"leader": idString(lead), "name": s.memberName(lead)})
	}
}

// memberName returns the gossip name of the member with raft ID id, or
// "" if gossip does not know it.
func (s *Server) memberName(id uint64) string {
	for _, m := range s.gossip.Members() {
		if m.RaftID == id {
			return m.Name
		}
	}
	return ""
}

func (s *Server) resolveMember(name, hexID string) (uint64, error) {
	if hexID != "" {
		id, err := strconv.ParseUint(hexID, 16, 64)
		if err != nil || id == 0 {
			return 0, fmt.Errorf("server: bad member id %q: %w", hexID, grove.ErrBadArguments)
		}
		return id, nil
	}
	for _, m := range s.gossip.Members() {
		if m.Name == name {
			return m.RaftID, nil
		}
	}
	return 0, fmt.Errorf("server: no member named %q: %w", name, grove.ErrNoNode)
}

// leaderHTTP returns the leader's HTTP address, waiting up to a few
// seconds (or ctx) for a leader and its gossiped address to be known, as
// during an election.
func (s *Server) leaderHTTP(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		if lead := s.node.Leader(); lead != 0 {
			for _, m := range s.gossip.Members() {
				if m.RaftID == lead && m.HTTPAddr != "" {
					return m.HTTPAddr, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("server: no leader with a known HTTP address: %w", grove.ErrNoLeader)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) forwardToLeader(w http.ResponseWriter, r *http.Request) {
	addr, err := s.leaderHTTP(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	if r.Header.Get("X-Grove-Forwarded") != "" {
		writeError(w, http.StatusServiceUnavailable, grove.ErrNotLeader)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	scheme, client := "http://", http.DefaultClient
	if s.cfg.HTTPTLS != nil {
		scheme, client = "https://", s.forwardClient()
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, scheme+addr+r.URL.RequestURI(), r.Body)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	req.Header.Set("X-Grove-Forwarded", "1")
	// The leader runs the same guard: pass on what the caller proved.
	for _, h := range []string{"Authorization", GroveRequestHeader, "Content-Type"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func znodePath(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, "/v1/znode")
	if p == "" {
		p = "/"
	}
	return p
}

var errMethod = errors.New("server: method not allowed")

// secretFlags are the command-line flags whose values are secrets; the
// profiler's cmdline endpoint shows "<redacted>" instead (prefer the
// --*-file forms, which keep secrets out of ps as well).
var secretFlags = []string{"gossip-key", "super-digest"}

// handleCmdline serves the command line, NUL-separated as net/http/pprof
// does, with the values of secretFlags redacted.
func handleCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, strings.Join(redactArgs(os.Args), "\x00"))
}

// redactArgs replaces the values of secretFlags in args, in both the
// "--flag value" and the "--flag=value" forms, with one or two dashes.
func redactArgs(args []string) []string {
	out := slices.Clone(args)
	for i := 0; i < len(out); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(out[i], "-"), "=")
		if !strings.HasPrefix(out[i], "-") || !slices.Contains(secretFlags, name) {
			continue
		}
		if hasValue {
			out[i] = out[i][:strings.Index(out[i], "=")+1] + "<redacted>"
		} else if i+1 < len(out) {
			out[i+1] = "<redacted>"
			i++
		}
	}
	return out
}

// forwardClient is the HTTPS client a follower forwards writes to the
// leader with, trusting HTTPTLS.RootCAs.
func (s *Server) forwardClient() *http.Client {
	s.fwdOnce.Do(func() {
		s.fwd = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: s.cfg.HTTPTLS.RootCAs, MinVersion: tls.VersionTLS12,
		}}}
	})
	return s.fwd
}

// auditHTTP records an operator's action on the HTTP port; the identity is
// "token" when the request carried the bearer token.
func (s *Server) auditHTTP(r *http.Request, kind, op, detail string, err error) {
	rec := audit.Record{Kind: kind, Op: op, Detail: detail, Client: r.RemoteAddr, Port: "http"}
	if len(s.cfg.HTTPToken) > 0 {
		rec.Identities = []string{"token"}
	}
	s.auditRecord(rec, err)
}
