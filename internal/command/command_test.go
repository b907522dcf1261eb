package command

import (
	"errors"
	"reflect"
	"testing"

	"github.com/grovekit/grove"
)

func TestRoundTrip(t *testing.T) {
	bodies := []any{
		&Request{Session: 7, Seq: 3, Op: OpCreate, Path: "/a", Data: []byte("x"), ACL: grove.OpenACLUnsafe, Mode: grove.ModeEphemeralSequential},
		&Request{Session: 7, Seq: 4, Op: OpMulti, Ops: []grove.Op{grove.CheckOp("/a", 1), grove.DeleteOp("/a", -1)}},
		&CreateSession{TimeoutMs: 10000, Password: []byte{1, 2, 3}},
		&Expire{Sessions: []uint64{1, 2}},
		&Reap{Items: []ReapItem{{Path: "/c", Czxid: 9}}},
	}
	for _, b := range bodies {
		data, err := Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		Stamp(data, 1234)
		e, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if e.TimeMs != 1234 || !reflect.DeepEqual(e.Body, b) {
			t.Fatalf("round trip of %#v gave %#v at %d", b, e.Body, e.TimeMs)
		}
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	good, _ := Encode(&Expire{Sessions: []uint64{1}})
	cases := map[string][]byte{
		"empty":        nil,
		"short":        {Version, byte(KindRequest)},
		"bad version":  append([]byte{99}, good[1:]...),
		"unknown kind": append([]byte{Version, 200}, good[2:]...),
		"truncated":    good[:len(good)-1],
		"garbage body": append(append([]byte{}, good[:HeaderSize]...), 0xc1),
		"wrong shape":  append(append([]byte{Version, byte(KindRequest)}, good[2:HeaderSize]...), 0x93, 1, 2, 3),
	}
	for name, in := range cases {
		if _, err := Decode(in); !errors.Is(err, grove.ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, b := range []any{
		&Request{Session: 1, Seq: 1, Op: OpCreate, Path: "/a"},
		&CreateSession{TimeoutMs: 1},
		&Expire{Sessions: []uint64{1}},
		&Reap{Items: []ReapItem{{Path: "/a"}}},
	} {
		data, _ := Encode(b)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			if !errors.Is(err, grove.ErrCorrupt) {
				t.Fatalf("error not typed: %v", err)
			}
			return
		}
		if _, err := Encode(e.Body); err != nil {
			t.Fatalf("decoded body does not re-encode: %v", err)
		}
	})
}

// The hand-written result encoder writes what reflection reads back, for
// every field set and unset, multi included.
func TestResultEncodingRoundTrips(t *testing.T) {
	st := &grove.Stat{Czxid: 1, Mzxid: -2, Ctime: 1 << 40, Mtime: 4, Version: 5, Cversion: -6, Aversion: 7,
		EphemeralOwner: -1 << 62, DataLength: 9, NumChildren: 10, Pzxid: 11}
	for _, r := range []*Result{
		{},
		{Code: grove.CodeNoNode},
		{Path: "/a", Stat: st, Zxid: 1 << 63},
		{Code: grove.CodeBadVersion, Multi: []OpResult{
			{Type: grove.OpCreate, Path: "/x", Stat: st}, {Type: grove.OpDelete, Code: grove.CodeNotEmpty}, {Type: grove.OpCheck},
		}},
	} {
		b, err := EncodeResult(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeResult(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
}
