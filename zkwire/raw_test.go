package zkwire_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"github.com/grovekit/grove/core"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawClient speaks ZooKeeper's protocol by hand, for the requests
// go-zookeeper does not implement. It writes records with encoding/binary
// directly, independently of the server's encoder.
type rawClient struct {
	t   testing.TB
	nc  net.Conn
	br  *bufio.Reader
	xid int32
}

type rec []byte

func (r rec) i32(v int32) rec { return binary.BigEndian.AppendUint32(r, uint32(v)) }
func (r rec) i64(v int64) rec { return binary.BigEndian.AppendUint64(r, uint64(v)) }
func (r rec) str(s string) rec {
	return append(r.i32(int32(len(s))), s...)
}
func (r rec) boolean(b bool) rec {
	if b {
		return append(r, 1)
	}
	return append(r, 0)
}

func framed(r rec) []byte { return append(rec(nil).i32(int32(len(r))), r...) }

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// handshake sends a ConnectRequest and returns the response fields.
func (c *rawClient) handshake(lastZxid, session int64, password []byte, readOnly bool) (timeout int32, sid int64, pw []byte, ro []byte, err error) {
	r := rec(nil).i32(0).i64(lastZxid).i32(4000).i64(session).i32(int32(len(password)))
	r = append(r, password...)
	if readOnly {
		r = r.boolean(true)
	}
	if _, err := c.nc.Write(framed(r)); err != nil {
		return 0, 0, nil, nil, err
	}
	b, err := c.frame()
	if err != nil {
		return 0, 0, nil, nil, err
	}
	timeout = int32(binary.BigEndian.Uint32(b[4:8]))
	sid = int64(binary.BigEndian.Uint64(b[8:16]))
	n := binary.BigEndian.Uint32(b[16:20])
	return timeout, sid, b[20 : 20+n], b[20+n:], nil
}

func (c *rawClient) mustConnect() int64 {
	c.t.Helper()
	to, sid, _, _, err := c.handshake(0, 0, make([]byte, 16), false)
	if err != nil || to <= 0 || sid == 0 {
		c.t.Fatalf("handshake: timeout %d session %x: %v", to, sid, err)
	}
	return sid
}

func (c *rawClient) frame() ([]byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	_, err := io.ReadFull(c.br, b)
	return b, err
}

// call sends a request and returns the reply's error code and body,
// skipping watch notifications (returned in events).
func (c *rawClient) call(op int32, body rec) (code int32, reply []byte, events [][]byte) {
	c.t.Helper()
	c.xid++
	if _, err := c.nc.Write(framed(append(rec(nil).i32(c.xid).i32(op), body...))); err != nil {
		c.t.Fatal(err)
	}
	for {
		b, err := c.frame()
		if err != nil {
			c.t.Fatalf("op %d: %v", op, err)
		}
		xid := int32(binary.BigEndian.Uint32(b[:4]))
		if xid == -1 {
			events = append(events, b) // with the header: xid, zxid, err
			continue
		}
		if xid != c.xid {
			c.t.Fatalf("reply for xid %d, want %d", xid, c.xid)
		}
		return int32(binary.BigEndian.Uint32(b[12:16])), b[16:], events
	}
}

// closedQuietly reports whether the server closed the connection without
// sending anything more.
func (c *rawClient) closedQuietly() bool {
	_, err := c.frame()
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func readStrings(b []byte) []string {
	n := int(int32(binary.BigEndian.Uint32(b)))
	b = b[4:]
	var out []string
	for range n {
		l := int(binary.BigEndian.Uint32(b))
		out = append(out, string(b[4:4+l]))
		b = b[4+l:]
	}
	return out
}

const (
	opCreate      = 1
	opGetData     = 4
	opSetData     = 5
	opGetChildren = 8
	opCheckW      = 17
	opRemoveW     = 18
	opMultiRead   = 22
	opSetWatches2 = 105
	opGetEph      = 103
	opAllChildren = 104
	opAddWatch    = 106
	opWhoAmI      = 107
)

func createRec(path string, flags int32) rec {
	return rec(nil).str(path).i32(0).i32(1).i32(31).str("world").str("anyone").i32(flags)
}

func TestZKNewerRequests(t *testing.T) {
	zc := newZKCluster(t, 1)
	c := dialRaw(t, zc.addrs[0])
	c.mustConnect()
	var code int32
	var body []byte
	for _, p := range []string{"/r", "/r/a", "/r/a/b"} {
		if code, _, _ := c.call(opCreate, createRec(p, 0)); code != 0 {
			t.Fatalf("create %s: %d", p, code)
		}
	}
	if code, _, _ := c.call(opCreate, createRec("/r/e", 1)); code != 0 {
		t.Fatalf("create ephemeral: %d", code)
	}
	// getAllChildrenNumber
	code, body, _ = c.call(opAllChildren, rec(nil).str("/r"))
	if code != 0 || binary.BigEndian.Uint32(body) != 3 {
		t.Fatalf("getAllChildrenNumber: code %d body %x", code, body)
	}
	// getEphemerals
	code, body, _ = c.call(opGetEph, rec(nil).str("/"))
	if got := readStrings(body); code != 0 || len(got) != 1 || got[0] != "/r/e" {
		t.Fatalf("getEphemerals: %d %v", code, got)
	}
	// whoAmI
	code, body, _ = c.call(opWhoAmI, nil)
	if n := binary.BigEndian.Uint32(body); code != 0 || n != 1 {
		t.Fatalf("whoAmI: code %d, %d identities", code, n)
	}
	body[3] = 2 // one ClientInfo is two strings: read them as a vector of two
	if got := readStrings(body); got[0] != "ip" || got[1] != "127.0.0.1" {
		t.Fatalf("whoAmI: %v", got)
	}
	// addWatch (persistent recursive), then checkWatches/removeWatches.
	if code, _, _ = c.call(opAddWatch, rec(nil).str("/r").i32(1)); code != 0 {
		t.Fatalf("addWatch: %d", code)
	}
	code, body, events := c.call(opSetData, rec(nil).str("/r/a/b").str("xy").i32(-1))
	if code != 0 {
		t.Fatalf("setData: %d", code)
	}
	if len(events) != 1 || !strings.Contains(string(events[0]), "/r/a/b") {
		t.Fatalf("a recursive watch missed a change below it: %q", events)
	}
	// The notification carries the zxid of the change (ZooKeeper 3.9): the
	// new Stat's mzxid, which is the second long of the reply body.
	if got, want := binary.BigEndian.Uint64(events[0][4:12]), binary.BigEndian.Uint64(body[8:16]); got != want || got == 0 {
		t.Fatalf("notification zxid %d, change zxid %d", got, want)
	}
	if code, _, _ = c.call(opCheckW, rec(nil).str("/r").i32(5)); code != 0 {
		t.Fatalf("checkWatches on a recursive watch: %d", code)
	}
	if code, _, _ = c.call(opCheckW, rec(nil).str("/r/a").i32(2)); code != -121 {
		t.Fatalf("checkWatches without a watch: %d, want NoWatcher (-121)", code)
	}
	if code, _, _ = c.call(opRemoveW, rec(nil).str("/r").i32(3)); code != 0 {
		t.Fatalf("removeWatches: %d", code)
	}
	if code, _, _ = c.call(opCheckW, rec(nil).str("/r").i32(3)); code != -121 {
		t.Fatalf("checkWatches after removal: %d", code)
	}
	// multiRead: one good getData, one missing node, one getChildren.
	mr := rec(nil).i32(opGetData).boolean(false).i32(-1).str("/r/a").boolean(false).
		i32(opGetData).boolean(false).i32(-1).str("/nope").boolean(false).
		i32(opGetChildren).boolean(false).i32(-1).str("/r").boolean(false).
		i32(-1).boolean(true).i32(-1)
	code, body, _ = c.call(opMultiRead, mr)
	if code != 0 {
		t.Fatalf("multiRead: %d", code)
	}
	if typ := int32(binary.BigEndian.Uint32(body)); typ != opGetData {
		t.Fatalf("multiRead first result type %d", typ)
	}
	// Skip to the second header: type(4) done(1) err(4) data(4+0) stat(68).
	second := body[9+4+68:]
	if typ, err := int32(binary.BigEndian.Uint32(second)), int32(binary.BigEndian.Uint32(second[5:])); typ != -1 || err != -101 {
		t.Fatalf("multiRead second result: type %d err %d, want -1/-101", typ, err)
	}
	// unknown opcode
	if code, _, _ = c.call(9999, nil); code != -6 {
		t.Fatalf("unknown opcode: %d, want Unimplemented (-6)", code)
	}
}

func TestZKHandshakes(t *testing.T) {
	zc := newZKCluster(t, 1)
	// With the read-only byte, the answer carries one too.
	c := dialRaw(t, zc.addrs[0])
	to, sid, pw, ro, err := c.handshake(0, 0, make([]byte, 16), true)
	if err != nil || to <= 0 || sid == 0 || len(pw) != 16 || len(ro) != 1 || ro[0] != 0 {
		t.Fatalf("handshake with readOnly: %d %x %x %x %v", to, sid, pw, ro, err)
	}
	// Re-attach with the password works; a wrong password is an expired
	// session (timeout 0), as in ZooKeeper.
	again := dialRaw(t, zc.addrs[0])
	if to2, sid2, _, _, err := again.handshake(0, sid, pw, false); err != nil || to2 <= 0 || sid2 != sid {
		t.Fatalf("re-attach: %d %x %v", to2, sid2, err)
	}
	bad := dialRaw(t, zc.addrs[0])
	if to3, sid3, _, _, err := bad.handshake(0, sid, make([]byte, 16), false); err != nil || to3 != 0 || sid3 != 0 {
		t.Fatalf("wrong password: timeout %d session %x %v", to3, sid3, err)
	}
	if !bad.closedQuietly() {
		t.Fatal("the connection of an expired session stayed open")
	}
	// The timeout is clamped to the server's bounds.
	for _, tc := range []struct{ ask, want int32 }{{1, 200}, {1 << 30, int32(core.DefaultConfig().MaxSessionTimeout.Milliseconds())}} {
		r := rec(nil).i32(0).i64(0).i32(tc.ask).i64(0).i32(16)
		r = append(r, make([]byte, 16)...)
		cl := dialRaw(t, zc.addrs[0])
		if _, err := cl.nc.Write(framed(r)); err != nil {
			t.Fatal(err)
		}
		b, err := cl.frame()
		if err != nil {
			t.Fatal(err)
		}
		if got := int32(binary.BigEndian.Uint32(b[4:8])); got != tc.want {
			t.Fatalf("asked for %d ms, got %d, want %d", tc.ask, got, tc.want)
		}
	}
	// A client that has seen a newer zxid than the server is refused
	// without an answer.
	ahead := dialRaw(t, zc.addrs[0])
	if _, _, _, _, err := ahead.handshake(1<<40, 0, make([]byte, 16), false); err == nil {
		t.Fatal("a client ahead of the server was accepted")
	}
}

func TestZKBadInput(t *testing.T) {
	zc := newZKCluster(t, 1)
	probe, _ := connect(t, zc.addrs, 5*time.Second)
	alive := func() {
		t.Helper()
		if _, err := probe.Create("/alive-"+time.Now().Format("150405.000000000"), nil, 0, open); err != nil {
			t.Fatalf("another session broke: %v", err)
		}
	}
	cases := map[string][]byte{
		"oversized frame":   rec(nil).i32(2 << 20),
		"negative length":   rec(nil).i32(-5),
		"truncated request": framed(rec(nil).i32(1).i32(opCreate).str("/x")),
		"garbage":           framed(rec("not a jute record at all")),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, zc.addrs[0])
			c.mustConnect()
			if _, err := c.nc.Write(payload); err != nil {
				t.Fatal(err)
			}
			_ = c.nc.(*net.TCPConn).CloseWrite()
			// The server answers what it can (a malformed create takes its
			// place as an error) or closes; it never hangs or dies.
			for {
				b, err := c.frame()
				if err != nil {
					break
				}
				if code := int32(binary.BigEndian.Uint32(b[12:16])); code == 0 {
					t.Fatalf("bad input answered with success: %x", b)
				}
			}
			alive()
		})
	}
}

func TestZKFourLetterWordOutput(t *testing.T) {
	zc := newZKCluster(t, 3)
	connect(t, zc.addrs[:1], 5*time.Second)
	word := func(addr, cmd string) string {
		t.Helper()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_, _ = nc.Write([]byte(cmd))
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(nc)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	checks := map[string]string{
		"envi": "zookeeper.version=3.9.3-grove",
		"conf": "serverId=",
		"mntr": "zk_server_state\t",
		"wchs": "Total watches:",
		"isro": "rw",
		"dump": "Sessions with Ephemerals",
		"stat": "Clients:",
	}
	for cmd, want := range checks {
		if got := word(zc.addrs[0], cmd); !strings.Contains(got, want) {
			t.Fatalf("%s: %q lacks %q", cmd, got, want)
		}
	}
	modes := ""
	for _, a := range zc.addrs {
		for _, line := range strings.Split(word(a, "srvr"), "\n") {
			if strings.HasPrefix(line, "Mode: ") {
				modes += strings.TrimPrefix(line, "Mode: ") + " "
			}
		}
	}
	if strings.Count(modes, "leader") != 1 || strings.Count(modes, "follower") != 2 {
		t.Fatalf("modes: %q", modes)
	}
}
