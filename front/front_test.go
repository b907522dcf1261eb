package front_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/core/coretest"
	"github.com/grovekit/grove/front"
	"github.com/grovekit/grove/front/fronttest"
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/frame"
	"github.com/grovekit/grove/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is one node served on a client port, with a bystander session whose
// work must never be disturbed by another connection's misbehaviour.
type rig struct {
	addr      string
	srv       *front.Server
	bystander *client.Session
}

func newRig(t testing.TB) *rig {
	c := coretest.NewCluster(t, 1)
	c.WaitLeader(context.Background())
	addr, srv := fronttest.Serve(t, c.Nodes()[0], front.Config{MaxFrame: 64 << 10})
	s, err := client.Dial(context.Background(), []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if _, err := s.Create(context.Background(), "/bystander", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	return &rig{addr: addr, srv: srv, bystander: s}
}

// check fails unless the bystander can still write and read.
func (r *rig) check(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := r.bystander.Set(ctx, "/bystander", []byte("ok"), -1)
	if err != nil {
		t.Fatalf("bystander write: %v", err)
	}
	if _, got, err := r.bystander.Get(ctx, "/bystander"); err != nil || got.Version != st.Version {
		t.Fatalf("bystander read: %+v %v", got, err)
	}
}

func msg(t testing.TB, typ wire.Type, xid uint64, body any) []byte {
	m, err := wire.Append(nil, typ, xid, body)
	if err != nil {
		t.Fatal(err)
	}
	f, err := frame.AppendFrame(nil, frame.FrameClient, m)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// connect opens a raw connection with a fresh session.
func connect(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	if _, err := nc.Write(msg(t, wire.TConnect, 0, &wire.Connect{Version: wire.Version, TimeoutMs: 2000})); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	typ, _, _ := next(t, nc, br)
	if typ != wire.TConnected {
		t.Fatalf("handshake answered %s", typ)
	}
	return nc, br
}

// next reads one message (10 s at most).
func next(t testing.TB, nc net.Conn, br *bufio.Reader) (wire.Type, uint64, []byte) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := frame.ReadFrame(br, 1<<20)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	typ, xid, body, err := wire.Split(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return typ, xid, body
}

// closedWith reads until the server closes the connection and returns the
// connection error it sent last (nil if none).
func closedWith(t testing.TB, nc net.Conn, br *bufio.Reader) *wire.Error {
	t.Helper()
	var last *wire.Error
	for {
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := frame.ReadFrame(br, 1<<20)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return last
		}
		if err != nil {
			t.Fatalf("the server neither answered nor closed: %v", err)
		}
		typ, xid, body, err := wire.Split(f.Payload)
		if err == nil && typ == wire.TError && xid == 0 {
			var e wire.Error
			if wire.DecodeBody(body, &e) == nil {
				last = &e
			}
		}
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func TestProtocolViolationsCloseOnlyTheirConnection(t *testing.T) {
	r := newRig(t)
	cases := map[string]struct {
		handshake bool
		send      func(t *testing.T) []byte
		code      grove.Code
	}{
		"request before connect": {false, func(t *testing.T) []byte { return msg(t, wire.TRead, 1, &wire.Read{Kind: 1, Path: "/"}) }, grove.CodeBadRequest},
		"wrong protocol version": {false, func(t *testing.T) []byte { return msg(t, wire.TConnect, 0, &wire.Connect{Version: 99}) }, grove.CodeBadRequest},
		"unknown request type":   {true, func(t *testing.T) []byte { return msg(t, wire.Type(77), 1, nil) }, grove.CodeBadRequest},
		"server message type":    {true, func(t *testing.T) []byte { return msg(t, wire.TEvent, 1, &grove.Event{}) }, grove.CodeBadRequest},
		"request without xid":    {true, func(t *testing.T) []byte { return msg(t, wire.TSync, 0, nil) }, grove.CodeBadRequest},
		"malformed body": {true, func(t *testing.T) []byte {
			m := append([]byte{byte(wire.TWrite)}, make([]byte, 8)...)
			m[8] = 1
			m = append(m, 0xdf, 0xff, 0xff, 0xff, 0xff) // a map claiming 4 billion entries
			f, _ := frame.AppendFrame(nil, frame.FrameClient, m)
			return f
		}, grove.CodeBadRequest},
		"oversized frame": {true, func(t *testing.T) []byte {
			var hdr [6]byte
			binary.BigEndian.PutUint32(hdr[:4], 1<<30)
			hdr[4], hdr[5] = frame.ProtocolVersion, byte(frame.FrameClient)
			return hdr[:]
		}, grove.CodeTooLarge},
		"peer frame on the client port": {true, func(t *testing.T) []byte {
			f, _ := frame.AppendFrame(nil, frame.FrameMessage, []byte{1, 2, 3})
			return f
		}, grove.CodeBadRequest},
		"short message": {true, func(t *testing.T) []byte {
			f, _ := frame.AppendFrame(nil, frame.FrameClient, []byte{byte(wire.TSync), 0, 1})
			return f
		}, grove.CodeBadRequest},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var nc net.Conn
			var br *bufio.Reader
			if tc.handshake {
				nc, br = connect(t, r.addr)
			} else {
				var err error
				if nc, err = net.Dial("tcp", r.addr); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = nc.Close() })
				br = bufio.NewReader(nc)
			}
			if _, err := nc.Write(tc.send(t)); err != nil {
				t.Fatal(err)
			}
			e := closedWith(t, nc, br)
			if e == nil || e.Code != tc.code {
				t.Fatalf("connection error %+v, want code %d", e, tc.code)
			}
			r.check(t)
		})
	}
}

// Requests the node refuses are answered with their error and the
// connection, and the session's order, carry on.
func TestRefusedRequestsKeepTheConnection(t *testing.T) {
	r := newRig(t)
	nc, br := connect(t, r.addr)
	steps := []struct {
		m    []byte
		want grove.Code
	}{
		{msg(t, wire.TRead, 1, &wire.Read{Kind: 99, Path: "/"}), grove.CodeBadRequest},
		{msg(t, wire.TRead, 2, &wire.Read{Kind: 1, Path: "no-slash"}), grove.CodeBadArguments},
		{msg(t, wire.TAddWatch, 3, &wire.Watch{Path: "/", Kind: grove.WatchData}), grove.CodeBadArguments},
		{msg(t, wire.TWrite, 4, &command.Request{Seq: 1, Op: command.OpCreate, Path: "bad"}), grove.CodeBadArguments},
		{msg(t, wire.TWrite, 5, &command.Request{Seq: 2, Op: command.OpCreate, Path: "/x", ACL: grove.OpenACLUnsafe}), grove.CodeOK},
		{msg(t, wire.TAuth, 6, &wire.Auth{Scheme: "nope", Cred: []byte("x")}), grove.CodeAuthFailed},
	}
	for _, st := range steps {
		if _, err := nc.Write(st.m); err != nil {
			t.Fatal(err)
		}
	}
	for i, st := range steps {
		typ, xid, body := next(t, nc, br)
		var code grove.Code
		switch typ {
		case wire.TError:
			var e wire.Error
			if err := wire.DecodeBody(body, &e); err != nil {
				t.Fatal(err)
			}
			code = e.Code
		case wire.TReply:
			if i == 3 || i == 4 { // writes answer with a result
				var res command.Result
				if err := wire.DecodeBody(body, &res); err != nil {
					t.Fatal(err)
				}
				code = res.Code
			}
		default:
			t.Fatalf("step %d: %s", i, typ)
		}
		if xid != uint64(i+1) || code != st.want {
			t.Fatalf("step %d: xid %d code %d, want xid %d code %d", i, xid, code, i+1, st.want)
		}
	}
	r.check(t)
}

// FuzzRequestStream throws arbitrary bytes at a connected session: the
// server closes that connection (or answers), never crashes or hangs, and
// other sessions are unaffected.
func FuzzRequestStream(f *testing.F) {
	r := newRig(f)
	seed := func(typ wire.Type, body any) []byte {
		m, _ := wire.Append(nil, typ, 1, body)
		fr, _ := frame.AppendFrame(nil, frame.FrameClient, m)
		return fr
	}
	f.Add(seed(wire.TWrite, &command.Request{Seq: 1, Op: command.OpCreate, Path: "/f", Data: []byte("d")}))
	f.Add(seed(wire.TRead, &wire.Read{Kind: 3, Path: "/", Watch: true}))
	f.Add(seed(wire.TSetWatches, &wire.SetWatches{Since: 5, Watches: []wire.Watch{{Path: "/", Kind: 2, Existed: true}}}))
	f.Add(seed(wire.TAuth, &wire.Auth{Scheme: "digest", Cred: []byte("a:b")}))
	f.Add(seed(wire.TWrite, &command.Request{Seq: 1, Op: command.OpMulti, Ops: []grove.Op{grove.CheckOp("/", -1)}}))
	f.Add([]byte{0, 0, 0, 2, 1, 16})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, br := connect(t, r.addr)
		if _, err := nc.Write(data); err != nil {
			t.Fatal(err)
		}
		_ = nc.(*net.TCPConn).CloseWrite()
		closedWith(t, nc, br) // returns once the server closed
		r.check(t)
	})
}
