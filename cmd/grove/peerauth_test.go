package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/transport"
)

// An outsider on the peer port, as the trust-boundary review found it: it
// claims to be a follower, proposes a create under the super identity in
// another client's session, an expiry of that session and the removal of
// a voter, and sends every node a heartbeat of a higher term committing
// index 2^40 (which used to panic raft on every node).
//
// Against the default configuration (a loopback cluster started with no
// flags: its servers use the per-user cluster key and HTTP token) and
// against an explicit cluster key, the outsider never gets past the
// handshake: nothing it sends is read, and the HTTP port answers its
// backup request with 401. With --insecure (the explicit opt-out) the same
// forged create lands, which shows the attack is real; the heartbeat is
// still dropped there, by the checks on raft's invariants.
func TestPeerPortOutsider(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; run without -short")
	}
	refused := func(t *testing.T, c *procCluster, nodes []*proc) {
		a := newOutsider(t, c, nodes)
		a.attack(t, true)
		a.waitRefused(t, c)
		a.checkUnharmed(t, c, nodes)
		if _, err := get(nodes[0].httpAdr, "/pwned"); err == nil {
			t.Fatal("the forged create landed")
		}
		if err := a.sessionAlive(); err != nil {
			t.Fatalf("the victim's session did not survive the forged expiry: %v", err)
		}
		logged := false
		for _, p := range nodes {
			b, _ := os.ReadFile(filepath.Join(c.base, p.name+".log"))
			logged = logged || strings.Contains(string(b), "peer failed authentication")
		}
		if !logged {
			t.Fatal("no node logged the refused handshake")
		}
		checkHTTPRefusals(t, nodes[0].httpAdr)
	}
	t.Run("default configuration", func(t *testing.T) {
		c := newProcCluster(t)
		refused(t, c, c.startThree("d"))
	})
	t.Run("cluster key", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "cluster.key")
		if err := os.WriteFile(key, []byte(strings.Repeat("s3cret-", 8)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := newProcCluster(t)
		c.common = []string{"--cluster-key-file", key}
		refused(t, c, c.startThree("k"))
	})
	t.Run("insecure (control)", func(t *testing.T) {
		c := newProcCluster(t)
		c.common = []string{"--insecure"}
		nodes := c.startThree("o")
		a := newOutsider(t, c, nodes)
		a.attack(t, false)
		c.waitFor("the forged create to land", 20*time.Second, func() bool {
			_, err := get(nodes[0].httpAdr, "/pwned")
			return err == nil
		})
		a.checkUnharmed(t, c, nodes)
	})
}

// outsider is a process with no key that claims a follower's raft ID.
type outsider struct {
	tr       *transport.TCP
	leader   uint64
	follower uint64
	ids      map[uint64]string // raft ID → peer address
	term     uint64
	victim   *client.Session
}

type ignoreAll struct{}

func (ignoreAll) Receive(uint64, []byte) {}
func (ignoreAll) ReceiveSnapshot(context.Context, uint64, []byte, io.Reader) error {
	return nil
}
func (ignoreAll) ReportUnreachable(uint64) {}

func newOutsider(t *testing.T, c *procCluster, nodes []*proc) *outsider {
	t.Helper()
	lp := c.leader(nodes...)
	st, err := status(lp.httpAdr)
	if err != nil {
		t.Fatal(err)
	}
	a := &outsider{ids: map[uint64]string{}, term: st.Term}
	a.leader, _ = strconv.ParseUint(st.ID, 16, 64)
	for _, p := range nodes {
		ps, err := status(p.httpAdr)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := strconv.ParseUint(ps.ID, 16, 64)
		a.ids[id] = p.peer
		if id != a.leader {
			a.follower = id
		}
	}
	cfg := transport.DefaultConfig()
	cfg.ID, cfg.ListenAddr = a.follower, "127.0.0.1:0"
	if a.tr, err = transport.New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.tr.Close() })
	if err := a.tr.Start(ignoreAll{}); err != nil {
		t.Fatal(err)
	}
	for id, addr := range a.ids {
		a.tr.AddPeer(id, addr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if a.victim, err = client.Dial(ctx, []string{lp.client}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.victim.Close(context.Background()) })
	return a
}

// attack sends the forged proposals to the leader and the heartbeat to
// every node; withConfChange adds the removal of a voter.
func (a *outsider) attack(t *testing.T, withConfChange bool) {
	t.Helper()
	create, err := command.Encode(&command.Request{
		Session: a.victim.ID(), Seq: 1, Identities: []grove.Identity{{Scheme: "super", ID: "super"}},
		Op: command.OpCreate, Path: "/pwned", ACL: grove.OpenACLUnsafe,
	})
	if err != nil {
		t.Fatal(err)
	}
	ents := []*pb.Entry{{Data: create}}
	if withConfChange {
		expire, err := command.Encode(&command.Expire{Sessions: []uint64{a.victim.ID()}})
		if err != nil {
			t.Fatal(err)
		}
		cc, err := proto.Marshal(&pb.ConfChange{Type: pb.ConfChangeRemoveNode.Enum(), NodeId: new(a.follower)})
		if err != nil {
			t.Fatal(err)
		}
		ents = append(ents, &pb.Entry{Data: expire}, &pb.Entry{Type: pb.EntryConfChange.Enum(), Data: cc})
	}
	a.send(t, a.leader, &pb.Message{Type: pb.MsgProp.Enum(), Entries: ents})
	for id := range a.ids {
		if id != a.follower {
			a.send(t, id, &pb.Message{Type: pb.MsgHeartbeat.Enum(), Term: new(a.term + 1), Commit: new(uint64(1) << 40)})
		}
	}
}

// send forges m as coming from the follower.
func (a *outsider) send(t *testing.T, to uint64, m *pb.Message) {
	t.Helper()
	m.From, m.To = new(a.follower), new(to)
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	a.tr.Send(to, append([]byte{1}, b...)) // 1: core's raft-message envelope
}

// waitRefused waits until every forged message has been dropped by a
// refused handshake, none sent.
func (a *outsider) waitRefused(t *testing.T, c *procCluster) {
	t.Helper()
	c.waitFor("the outsider's handshakes to fail", 20*time.Second, func() bool {
		s := a.tr.Stats()
		return s.HandshakeFailures >= 2 && s.MessagesDropped >= 3
	})
	if s := a.tr.Stats(); s.MessagesSent != 0 || s.Connects != 0 {
		t.Fatalf("the outsider connected: %+v", s)
	}
}

// checkUnharmed checks that every node is up, the three voters remain with
// one leader, and a write through each node still commits everywhere.
func (a *outsider) checkUnharmed(t *testing.T, c *procCluster, nodes []*proc) {
	t.Helper()
	for i, p := range nodes {
		if err := put(p.httpAdr, "/after-"+strconv.Itoa(i), "x"); err != nil {
			t.Fatalf("write through %s after the attack: %v", p.name, err)
		}
	}
	c.waitFor("the nodes to converge", 20*time.Second, func() bool { return c.converged(nodes...) })
	for _, p := range nodes {
		select {
		case <-p.done:
			t.Fatalf("%s exited", p.name)
		default:
		}
		st, err := status(p.httpAdr)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Voters) != 3 {
			t.Fatalf("%s: voters %v after the attack", p.name, voterNames(st))
		}
	}
}

// sessionAlive checks that the victim's session still writes.
func (a *outsider) sessionAlive() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.victim.Create(ctx, "/victim-alive", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	return err
}

// TestRogueWithoutKeyNeverJoins starts a default-configuration cluster
// (per-user cluster key, so gossip is encrypted) and a rogue server
// without any key (--insecure) pointed at its gossip seeds: the rogue
// cannot join gossip, never appears among the members, never becomes a
// learner or voter, and the cluster keeps its three voters and writes on.
func TestRogueWithoutKeyNeverJoins(t *testing.T) {
	c := newProcCluster(t)
	nodes := c.startThree("g")
	rogue := c.add("rogue", "--insecure", "--log-level", "debug")
	c.waitFor("the rogue's gossip joins to fail twice", 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(c.base, rogue.name+".log"))
		return strings.Count(string(b), "gossip join failed") >= 2
	})
	for _, p := range nodes {
		st, err := status(p.httpAdr)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range st.GossipMembers {
			if m.Name == "rogue" {
				t.Fatalf("%s lists the rogue among its gossip members", p.name)
			}
		}
		if len(st.Voters) != 3 || len(st.Learners) != 0 {
			t.Fatalf("%s: voters %v, learners %v", p.name, voterNames(st), st.Learners)
		}
	}
	if err := put(nodes[0].httpAdr, "/still-writing", "x"); err != nil {
		t.Fatal(err)
	}
}

// checkHTTPRefusals sends a node's HTTP port what a stranger or a web page
// would: every endpoint that reads data or changes the cluster without the
// token is 401; a form POST, a cross-origin write and a rebound host name
// are 403, even with the token (the per-user one, as the CLI sends it).
func checkHTTPRefusals(t *testing.T, addr string) {
	t.Helper()
	token := ""
	if f := defaultTokenFile(); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		token = strings.TrimSpace(string(b))
	}
	for _, tt := range []struct {
		method, path string
		hdr          map[string]string
		want         int
	}{
		{"GET", "/status", nil, 401},
		{"GET", "/members", nil, 401},
		{"GET", "/v1/digest", nil, 401},
		{"GET", "/v1/backup", nil, 401},
		{"GET", "/v1/znode/", nil, 401},
		{"PUT", "/v1/znode/x", nil, 401},
		{"DELETE", "/v1/znode/x", nil, 401},
		{"POST", "/members/remove?name=g1", map[string]string{"X-Grove-Request": "1"}, 401},
		{"POST", "/members/add?name=evil", map[string]string{"X-Grove-Request": "1"}, 401},
		{"GET", "/debug/pprof/cmdline", nil, 401},
		{"POST", "/members/remove?name=g1", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "text/plain"}, 403},
		{"PUT", "/v1/znode/x", map[string]string{"Authorization": "Bearer " + token, "Origin": "http://evil.example"}, 403},
		{"GET", "/status", map[string]string{"Authorization": "Bearer " + token, "Host": "evil.example"}, 403},
		{"GET", "/healthz", nil, 200},
	} {
		req, _ := http.NewRequest(tt.method, "http://"+addr+tt.path, strings.NewReader("x"))
		for k, v := range tt.hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s %v: %d, want %d", tt.method, tt.path, tt.hdr, resp.StatusCode, tt.want)
		}
	}
}
