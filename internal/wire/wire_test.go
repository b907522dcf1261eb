package wire

import (
	"errors"
	"testing"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

func TestRoundTrip(t *testing.T) {
	in := &Connect{Version: Version, Session: 7, Password: []byte("pw"), TimeoutMs: 5000, LastZxid: 42}
	m, err := Append(nil, TConnect, 9, in)
	if err != nil {
		t.Fatal(err)
	}
	typ, xid, body, err := Split(m)
	if err != nil || typ != TConnect || xid != 9 {
		t.Fatalf("split: %s %d %v", typ, xid, err)
	}
	var out Connect
	if err := DecodeBody(body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Session != 7 || string(out.Password) != "pw" || out.LastZxid != 42 || out.TimeoutMs != 5000 {
		t.Fatalf("decoded %+v", out)
	}
}

func TestMalformed(t *testing.T) {
	if _, _, _, err := Split([]byte{1, 2}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short message: %v", err)
	}
	var r Read
	for _, body := range [][]byte{{0xdf, 0xff, 0xff, 0xff, 0xff}, {0x81}, {0xc1}, {0x91, 0xdb, 0xff, 0xff, 0xff, 0xff}} {
		if err := DecodeBody(body, &r); !errors.Is(err, ErrMalformed) {
			t.Fatalf("body %x: %v", body, err)
		}
	}
}

func TestErrorCarriesTheSentinel(t *testing.T) {
	e := ErrorOf(grove.ErrNoNode)
	if !errors.Is(e.Err(), grove.ErrNoNode) {
		t.Fatalf("%v", e.Err())
	}
	if !errors.Is((&Error{Code: -99999}).Err(), grove.ErrSystemError) {
		t.Fatal("an unknown code must map to a system error")
	}
}

// FuzzDecode decodes arbitrary messages as every body type: an error or a
// value, never a panic or a huge allocation.
func FuzzDecode(f *testing.F) {
	for _, body := range []any{
		&Connect{Version: 1, Session: 3}, &Read{Kind: 1, Path: "/a", Watch: true},
		&SetWatches{Since: 4, Watches: []Watch{{Path: "/x", Kind: 1}}}, &Auth{Scheme: "digest", Cred: []byte("a:b")},
		&command.Request{Seq: 1, Op: command.OpMulti, Ops: []grove.Op{grove.DeleteOp("/a", -1)}},
		&ReadResult{Names: []string{"a", "b"}}, &grove.Event{Type: 1, Path: "/p", Zxid: 9},
	} {
		m, err := Append(nil, TRead, 1, body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		_, _, body, err := Split(m)
		if err != nil {
			return
		}
		targets := []any{&Connect{}, &Connected{}, &Read{}, &ReadResult{}, &Zxid{}, &Left{}, &Watch{},
			&SetWatches{}, &Auth{}, &Error{}, &command.Request{}, &command.Result{}, &grove.Event{}, &grove.Identity{}}
		for _, v := range targets {
			_ = DecodeBody(body, v)
		}
	})
}
